package backup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"strconv"
)

// RDB opcodes and value types (Redis's rdb.h). Types that only old or
// pre-release versions wrote, whose layout this reader does not know, are
// refused: a backup this reader cannot walk is not a verified backup.
const (
	opSlotInfo     = 0xF4
	opFunction2    = 0xF5
	opModuleAux    = 0xF7
	opIdle         = 0xF8
	opFreq         = 0xF9
	opAux          = 0xFA
	opResizeDB     = 0xFB
	opExpireTimeMS = 0xFC
	opExpireTime   = 0xFD
	opSelectDB     = 0xFE
	opEOF          = 0xFF

	typeString           = 0
	typeList             = 1
	typeSet              = 2
	typeZSet             = 3
	typeHash             = 4
	typeZSet2            = 5
	typeModule2          = 7
	typeHashZipmap       = 9
	typeListZiplist      = 10
	typeSetIntset        = 11
	typeZSetZiplist      = 12
	typeHashZiplist      = 13
	typeListQuicklist    = 14
	typeStreamListpacks  = 15
	typeHashListpack     = 16
	typeZSetListpack     = 17
	typeListQuicklist2   = 18
	typeStreamListpacks2 = 19
	typeSetListpack      = 20
	typeStreamListpacks3 = 21
	typeHashMetadata     = 24
	typeHashListpackEx   = 25
)

// maxRDBVersion is the newest RDB format this reader walks (Redis 7.4 and
// 8.x write 12).
const maxRDBVersion = 12

// maxAux bounds the auxiliary fields kept in memory (redis-ver and the like);
// longer ones are skipped.
const maxAux = 256

// An RDBInfo is what walking an RDB file learnt about it.
type RDBInfo struct {
	Version      int    // RDB format version, e.g. 10 for Redis 7.0, 11 for 7.2
	RedisVersion string // the redis-ver auxiliary field
	Keys         int64  // keys in all databases
	Size         int64  // bytes of the file
}

// redisCRC is Redis's CRC-64 (Jones polynomial, reflected, no inversion).
var redisCRC = crc64.MakeTable(0x95AC9329AC4BC9B5)

// flushAt is how many consumed bytes an rdbReader gathers before it hands
// them to its writer: one write per byte would cost more than the parsing.
const flushAt = 256 << 10

// An rdbReader walks an RDB file from src, keeping its CRC and size and
// passing every byte it consumes, and no other, on to out.
type rdbReader struct {
	src     *bufio.Reader
	out     io.Writer
	pending []byte
	crc     uint64
	n       int64
	buf     [16]byte
}

// ReadRDB walks a whole RDB file from src, up to and including its checksum,
// writes exactly its bytes to out (when not nil) and returns what it holds.
// It consumes no byte of src past the file's end, so src may go on with other
// data (the replication stream's end mark). Values are skipped, not held:
// memory stays small whatever the dataset. A truncated file, an unknown type
// or a checksum that does not match is an error.
func ReadRDB(src *bufio.Reader, out io.Writer) (*RDBInfo, error) {
	r := &rdbReader{src: src, out: out}
	info, err := r.walk()
	if err != nil {
		return nil, err
	}
	if err := r.flush(); err != nil {
		return nil, err
	}
	return info, nil
}

// consumed records bytes of the file read from src (before src discards
// them).
func (r *rdbReader) consumed(b []byte, sum bool) error {
	if sum {
		// hash/crc64 inverts before and after; Redis's CRC does neither.
		r.crc = ^crc64.Update(^r.crc, redisCRC, b)
	}
	r.n += int64(len(b))
	if r.out == nil {
		return nil
	}
	if len(b) >= flushAt {
		if err := r.flush(); err != nil {
			return err
		}
		return r.write(b)
	}
	r.pending = append(r.pending, b...)
	if len(r.pending) >= flushAt {
		return r.flush()
	}
	return nil
}

func (r *rdbReader) flush() error {
	if r.out == nil || len(r.pending) == 0 {
		return nil
	}
	err := r.write(r.pending)
	r.pending = r.pending[:0]
	return err
}

func (r *rdbReader) write(b []byte) error {
	if _, err := r.out.Write(b); err != nil {
		return &writeError{err}
	}
	return nil
}

// A writeError is a failure of the writer ReadRDB passes the file on to, not
// of the file.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// take consumes the next n bytes (n <= 16) into r.buf.
func (r *rdbReader) take(n int, sum bool) error {
	b, err := r.src.Peek(n)
	if len(b) < n {
		return fmt.Errorf("truncated RDB file: %w", unexpected(err))
	}
	copy(r.buf[:n], b)
	if err := r.consumed(b, sum); err != nil {
		return err
	}
	_, _ = r.src.Discard(n)
	return nil
}

func (r *rdbReader) walk() (*RDBInfo, error) {
	if err := r.take(9, true); err != nil {
		return nil, fmt.Errorf("cannot read the RDB header: %w", err)
	}
	hdr := append([]byte(nil), r.buf[:9]...)
	if string(hdr[:5]) != "REDIS" {
		return nil, fmt.Errorf("not an RDB file (it starts with %q)", printable(hdr[:5]))
	}
	v, err := strconv.Atoi(string(hdr[5:]))
	if err != nil || v < 1 {
		return nil, fmt.Errorf("not an RDB file (version %q)", printable(hdr[5:]))
	}
	if v > maxRDBVersion {
		return nil, fmt.Errorf("RDB version %d is newer than this reader knows (%d)", v, maxRDBVersion)
	}
	info := &RDBInfo{Version: v}
	for {
		t, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch t {
		case opEOF:
			sum := r.crc
			if err := r.take(8, false); err != nil {
				return nil, fmt.Errorf("cannot read the RDB checksum: %w", err)
			}
			// A zero checksum means Redis was told not to compute one
			// (rdbchecksum no).
			if want := binary.LittleEndian.Uint64(r.buf[:8]); want != 0 && want != sum {
				return nil, fmt.Errorf("RDB checksum mismatch: the file says %016x, its bytes give %016x", want, sum)
			}
			info.Size = r.n
			return info, nil
		case opAux:
			k, err := r.smallString()
			if err != nil {
				return nil, err
			}
			val, err := r.smallString()
			if err != nil {
				return nil, err
			}
			if k == "redis-ver" {
				info.RedisVersion = val
			}
		case opResizeDB:
			if err := r.lengths(2); err != nil {
				return nil, err
			}
		case opSlotInfo:
			if err := r.lengths(3); err != nil {
				return nil, err
			}
		case opSelectDB:
			if err := r.lengths(1); err != nil {
				return nil, err
			}
		case opExpireTimeMS:
			if err := r.skip(8); err != nil {
				return nil, err
			}
		case opExpireTime:
			if err := r.skip(4); err != nil {
				return nil, err
			}
		case opIdle:
			if err := r.lengths(1); err != nil {
				return nil, err
			}
		case opFreq:
			if err := r.skip(1); err != nil {
				return nil, err
			}
		case opFunction2:
			if err := r.skipString(); err != nil {
				return nil, err
			}
		case opModuleAux:
			// module id, when-opcode, when, then the module's typed values.
			if err := r.lengths(3); err != nil {
				return nil, err
			}
			if err := r.moduleValues(); err != nil {
				return nil, err
			}
		default:
			if err := r.skipString(); err != nil { // the key
				return nil, err
			}
			if err := r.value(t); err != nil {
				return nil, fmt.Errorf("key %d: %w", info.Keys+1, err)
			}
			info.Keys++
		}
	}
}

// value skips one value of type t.
func (r *rdbReader) value(t byte) error {
	switch t {
	case typeString, typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist,
		typeHashZiplist, typeHashListpack, typeZSetListpack, typeSetListpack:
		return r.skipString()
	case typeList, typeSet, typeListQuicklist:
		return r.strings(1)
	case typeHash:
		return r.strings(2)
	case typeZSet:
		return r.lenThen(func() error {
			if err := r.skipString(); err != nil {
				return err
			}
			n, err := r.byte()
			if err != nil {
				return err
			}
			if n >= 253 { // nan, +inf, -inf
				return nil
			}
			return r.skip(int64(n))
		})
	case typeZSet2:
		return r.lenThen(func() error {
			if err := r.skipString(); err != nil {
				return err
			}
			return r.skip(8)
		})
	case typeListQuicklist2:
		return r.lenThen(func() error {
			if err := r.lengths(1); err != nil { // container
				return err
			}
			return r.skipString()
		})
	case typeModule2:
		if err := r.lengths(1); err != nil {
			return err
		}
		return r.moduleValues()
	case typeStreamListpacks, typeStreamListpacks2, typeStreamListpacks3:
		return r.stream(t)
	case typeHashMetadata:
		if err := r.skip(8); err != nil { // minimum expire
			return err
		}
		return r.lenThen(func() error {
			if err := r.lengths(1); err != nil { // ttl
				return err
			}
			if err := r.skipString(); err != nil {
				return err
			}
			return r.skipString()
		})
	case typeHashListpackEx:
		if err := r.skip(8); err != nil {
			return err
		}
		return r.skipString()
	default:
		return fmt.Errorf("unknown RDB value type %d", t)
	}
}

// stream skips a stream (rdb.c rdbSaveObject, the three listpack versions).
func (r *rdbReader) stream(t byte) error {
	if err := r.strings(2); err != nil { // listpacks: master id, listpack
		return err
	}
	if err := r.lengths(3); err != nil { // length, last id
		return err
	}
	if t >= typeStreamListpacks2 {
		if err := r.lengths(5); err != nil { // first id, max deleted id, entries added
			return err
		}
	}
	return r.lenThen(func() error { // consumer groups
		if err := r.skipString(); err != nil {
			return err
		}
		if err := r.lengths(2); err != nil { // last id
			return err
		}
		if t >= typeStreamListpacks2 {
			if err := r.lengths(1); err != nil { // entries read
				return err
			}
		}
		if err := r.lenThen(func() error { // pending entries
			if err := r.skip(16 + 8); err != nil {
				return err
			}
			return r.lengths(1)
		}); err != nil {
			return err
		}
		return r.lenThen(func() error { // consumers
			if err := r.skipString(); err != nil {
				return err
			}
			seen := int64(8)
			if t >= typeStreamListpacks3 {
				seen += 8 // active time
			}
			if err := r.skip(seen); err != nil {
				return err
			}
			return r.lenThen(func() error { return r.skip(16) })
		})
	})
}

// moduleValues skips a module's typed values up to their end opcode.
func (r *rdbReader) moduleValues() error {
	for {
		op, _, err := r.length()
		if err != nil {
			return err
		}
		switch op {
		case 0: // EOF
			return nil
		case 1, 2: // signed, unsigned integer
			err = r.lengths(1)
		case 3: // float
			err = r.skip(4)
		case 4: // double
			err = r.skip(8)
		case 5: // string
			err = r.skipString()
		default:
			return fmt.Errorf("unknown module value opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}

// strings skips a length followed by per strings for each of its units.
func (r *rdbReader) strings(per int) error {
	return r.lenThen(func() error {
		for range per {
			if err := r.skipString(); err != nil {
				return err
			}
		}
		return nil
	})
}

// lenThen reads a length and calls f that many times.
func (r *rdbReader) lenThen(f func() error) error {
	n, _, err := r.length()
	if err != nil {
		return err
	}
	for range n {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (r *rdbReader) lengths(n int) error {
	for range n {
		if _, _, err := r.length(); err != nil {
			return err
		}
	}
	return nil
}

// length reads an RDB length; encoded reports the special string encodings
// (integers, LZF), whose kind is then the length.
func (r *rdbReader) length() (n uint64, encoded bool, err error) {
	b, err := r.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3F), false, nil
	case 1:
		c, err := r.byte()
		return uint64(b&0x3F)<<8 | uint64(c), false, err
	case 3:
		return uint64(b & 0x3F), true, nil
	}
	switch b {
	case 0x80:
		if err := r.full(4); err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(r.buf[:4])), false, nil
	case 0x81:
		if err := r.full(8); err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(r.buf[:8]), false, nil
	}
	return 0, false, fmt.Errorf("invalid RDB length byte %#x", b)
}

// skipString skips one RDB string in any of its encodings.
func (r *rdbReader) skipString() error {
	_, err := r.string(false)
	return err
}

// smallString reads a string, returning it when it is at most maxAux bytes
// and not compressed.
func (r *rdbReader) smallString() (string, error) {
	return r.string(true)
}

func (r *rdbReader) string(keep bool) (string, error) {
	n, encoded, err := r.length()
	if err != nil {
		return "", err
	}
	if encoded {
		switch n {
		case 0:
			return "", r.skip(1)
		case 1:
			return "", r.skip(2)
		case 2:
			return "", r.skip(4)
		case 3: // LZF: compressed length, plain length, compressed bytes
			clen, _, err := r.length()
			if err != nil {
				return "", err
			}
			if _, _, err := r.length(); err != nil {
				return "", err
			}
			return "", r.skip(int64(clen)) //nolint:gosec // Bounded by skip's own check.
		}
		return "", fmt.Errorf("unknown RDB string encoding %d", n)
	}
	if keep && n <= maxAux {
		b, err := r.src.Peek(int(n))
		if len(b) < int(n) {
			return "", fmt.Errorf("truncated RDB file: %w", unexpected(err))
		}
		v := string(b)
		if err := r.consumed(b, true); err != nil {
			return "", err
		}
		_, _ = r.src.Discard(int(n))
		return v, nil
	}
	if n > 1<<40 {
		return "", fmt.Errorf("RDB string of %d bytes is larger than any Redis holds", n)
	}
	return "", r.skip(int64(n))
}

func (r *rdbReader) byte() (byte, error) {
	if err := r.full(1); err != nil {
		return 0, err
	}
	return r.buf[0], nil
}

func (r *rdbReader) full(n int) error { return r.take(n, true) }

// skip consumes n bytes.
func (r *rdbReader) skip(n int64) error {
	if n < 0 || n > 1<<40 {
		return fmt.Errorf("invalid RDB length %d", n)
	}
	for n > 0 {
		k := int(min(n, int64(r.src.Size())))
		b, err := r.src.Peek(k)
		if len(b) == 0 {
			return fmt.Errorf("truncated RDB file: %w", unexpected(err))
		}
		if err := r.consumed(b, true); err != nil {
			return err
		}
		_, _ = r.src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// printable shows bytes from a file that may be anything.
func printable(b []byte) string {
	return strconv.QuoteToASCII(string(b))[1 : len(strconv.QuoteToASCII(string(b)))-1]
}
