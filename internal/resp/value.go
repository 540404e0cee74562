package resp

import (
	"strconv"
	"unsafe"
)

// A Kind is the RESP2 type of a reply.
type Kind byte

// The RESP2 reply kinds.
const (
	KindStatus Kind = '+'
	KindError  Kind = '-'
	KindInt    Kind = ':'
	KindBulk   Kind = '$'
	KindArray  Kind = '*'
	KindNil    Kind = 'n' // $-1 or *-1
)

// A Value is one RESP2 reply.
type Value struct {
	Kind  Kind
	Str   []byte // status, error and bulk
	Int   int64
	Elems []Value
}

// ValueSize is what one element of an array costs in memory once read.
const ValueSize = int64(unsafe.Sizeof(Value{}))

// IsError reports whether v is an error reply.
func (v Value) IsError() bool { return v.Kind == KindError }

// AppendCommand appends args as a RESP2 array of bulk strings.
func AppendCommand(b []byte, args ...[]byte) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}
