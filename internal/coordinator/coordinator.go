package coordinator

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Sentinel's settings for the instance's master, set by the coordinator when
// it tells its Sentinel what to monitor.
const (
	// DownAfter: a master that does not answer for 5 s is subjectively down
	// (Sentinel's default: 30 s).
	DownAfter = 5 * time.Second
	// FailoverTimeout: a failover that made no progress for 20 s is given
	// up and may be retried after twice that (Sentinel's default: 3 min).
	FailoverTimeout = 20 * time.Second

	// heldHost is where a held Redis replicates from (see internal/fn).
	heldHost = "127.0.0.1"
	heldPort = "1"

	// priorityStay and priorityGo are the replica-priority of pods that stay
	// and of pods a scale-down removes (0: Sentinel never promotes them).
	priorityStay = "100"
	priorityGo   = "0"
)

// A Kube is what the coordinator reads and writes in Kubernetes.
type Kube interface {
	// Replicas returns how many pods the StatefulSet has and how many the
	// tenant wants (fewer while a scale-down waits for the master to move).
	Replicas(ctx context.Context) (have, want int, err error)
	// Role returns the role label of pod ordinal, "" when it has none;
	// exists is false when the pod does not exist.
	Role(ctx context.Context, ordinal int) (role string, exists bool, err error)
	// SetRole sets the role label of pod ordinal; "" removes it.
	SetRole(ctx context.Context, ordinal int, role string) error
}

// Options configure a Coordinator.
type Options struct {
	// Self is this pod's ordinal.
	Self int
	// Addr returns the host:port of pod ordinal's Redis as Sentinel and
	// replicas name it (the pod's stable DNS name).
	Addr func(ordinal int) string
	// SentinelAddr returns the host:port of pod ordinal's Sentinel.
	SentinelAddr func(ordinal int) string
	// LocalRedis and LocalSentinel are this pod's own, on loopback.
	LocalRedis, LocalSentinel string
	// Password of the default user, of every Redis and Sentinel.
	Password string
	// DownAfter and FailoverTimeout of Sentinel; the package's defaults
	// when zero.
	DownAfter, FailoverTimeout time.Duration
	// ColdStartWait is how long the first master is not elected while some
	// pod's Redis does not answer (one of them may hold the newest data);
	// after it, the pods that answer decide. 60 s when zero.
	ColdStartWait time.Duration
	// Restored is true when the instance was created from a backup, which
	// only pod 0 restores (the others start empty and replicate): while
	// some pod does not answer, an empty pod is never elected, whatever
	// ColdStartWait, since the one restoring may be the only one with data.
	Restored bool
}

// A Coordinator keeps one pod of an instance with replicas in its place: it
// points its held Redis at the master, tells its Sentinel what to monitor,
// keeps its role label true, elects the first master and hands the master
// over before a scale-down removes its pod.
type Coordinator struct {
	o       Options
	kube    Kube
	log     logr.Logger
	clients map[string]*goredis.Client
	started time.Time
	// lastFailover rate-limits the failovers this coordinator asks for.
	lastFailover time.Time
	// labels is what this coordinator last wrote of pods' roles.
	labels map[int]string
	// lastScan is when a master last looked for other pods labelled master.
	lastScan time.Time
	// straySince is since when this pod's Redis has replicated from another
	// master than the one a majority of Sentinels name.
	straySince time.Time
}

// scanPeriod is how often a master looks for other pods still labelled
// master (it always does when it becomes master).
const scanPeriod = 10 * time.Second

// New returns a Coordinator.
func New(o Options, kube Kube, log logr.Logger) *Coordinator {
	if o.DownAfter == 0 {
		o.DownAfter = DownAfter
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = FailoverTimeout
	}
	if o.ColdStartWait == 0 {
		o.ColdStartWait = time.Minute
	}
	return &Coordinator{o: o, kube: kube, log: log, clients: map[string]*goredis.Client{}, started: time.Now(), labels: map[int]string{}}
}

// Run ticks every period until ctx is done.
func (c *Coordinator) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	defer c.Close()
	for {
		if err := c.Tick(ctx); err != nil && ctx.Err() == nil {
			c.log.Info("Cannot coordinate", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close closes the coordinator's connections.
func (c *Coordinator) Close() {
	for _, cl := range c.clients {
		_ = cl.Close() // Nothing to do about it.
	}
}

func (c *Coordinator) client(addr string) *goredis.Client {
	if cl, ok := c.clients[addr]; ok {
		return cl
	}
	cl := goredis.NewClient(&goredis.Options{
		Addr: addr, Password: c.o.Password, Protocol: 2, DisableIdentity: true,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second,
		PoolSize: 2, MaxRetries: -1,
	})
	c.clients[addr] = cl
	return cl
}

// A node is what one pod's Redis says of itself.
type node struct {
	Up         bool
	Role       string // master or slave
	MasterAddr string // host:port, for a replica
	LinkUp     bool
	Offset     int64
	Keys       int64
}

// empty is a Redis without data or replication history.
func (n node) empty() bool { return n.Keys == 0 && n.Offset == 0 }

// Held is a replica of nowhere: a Redis that just started.
func (n node) Held() bool {
	return n.Role == "slave" && n.MasterAddr == net.JoinHostPort(heldHost, heldPort)
}

func (c *Coordinator) node(ctx context.Context, addr string) node {
	info, err := c.client(addr).Info(ctx, "replication", "keyspace").Result()
	if err != nil {
		return node{}
	}
	f := fields(info)
	n := node{Up: true, Role: f["role"], LinkUp: f["master_link_status"] == "up"}
	if n.Role == "slave" {
		n.MasterAddr = net.JoinHostPort(f["master_host"], f["master_port"])
	}
	n.Offset, _ = strconv.ParseInt(f["master_repl_offset"], 10, 64)
	for k, v := range f {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		// db0:keys=1,expires=0,avg_ttl=0
		keys, _, _ := strings.Cut(strings.TrimPrefix(v, "keys="), ",")
		k, _ := strconv.ParseInt(keys, 10, 64)
		n.Keys += k
	}
	return n
}

// fields parses an INFO reply.
func fields(info string) map[string]string {
	out := map[string]string{}
	for l := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok {
			out[k] = v
		}
	}
	return out
}

// sentinelMaster returns the master pod ordinal i's Sentinel names, "" when
// it monitors none, and whether it answered at all.
func (c *Coordinator) sentinelMaster(ctx context.Context, addr string) (string, bool) {
	r, err := c.client(addr).Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", contract.SentinelMasterName).StringSlice()
	switch {
	case errors.Is(err, goredis.Nil):
		return "", true
	case err != nil || len(r) != 2:
		return "", false
	}
	return net.JoinHostPort(r[0], r[1]), true
}

// Tick looks at every pod once and corrects what is not as it should be.
func (c *Coordinator) Tick(ctx context.Context) error {
	have, want, err := c.kube.Replicas(ctx)
	if err != nil {
		return errors.Wrap(err, "cannot read the StatefulSet")
	}
	if c.o.Self >= have {
		// This pod is going: leave its label to the pods that stay.
		return nil
	}
	self := c.o.Addr(c.o.Self)
	own := c.node(ctx, c.o.LocalRedis)

	votes, answered, ownSentinel := map[string]int{}, 0, ""
	for i := range have {
		addr := c.o.SentinelAddr(i)
		if i == c.o.Self {
			addr = c.o.LocalSentinel
		}
		m, ok := c.sentinelMaster(ctx, addr)
		if i == c.o.Self {
			ownSentinel = m
		}
		if ok {
			answered++
		}
		if m != "" {
			votes[m]++
		}
	}
	majority := ""
	for m, n := range votes {
		if n > have/2 {
			majority = m
		}
	}
	master := majority
	if master == "" && ownSentinel == "" && answered > 0 {
		// This pod's Sentinel monitors nothing (it started, or the whole
		// instance did): adopt the master the other Sentinels name if they
		// agree and it runs as one; if no Sentinel names any, follow the
		// Redis that runs as master, else elect the first master.
		switch {
		case len(votes) == 1:
			for m := range votes {
				if n := c.node(ctx, m); n.Up && n.Role == "master" {
					master = m
				}
			}
		case len(votes) == 0:
			if master = c.runningMaster(ctx, have); master == "" {
				return c.elect(ctx, have)
			}
		}
	}
	if master == "" {
		// Sentinels disagree (a failover under way) or cannot be reached:
		// claim nothing.
		return c.label(ctx, have, roleOf(own, "", self))
	}
	if ownSentinel == "" {
		if err := c.monitor(ctx, master, have); err != nil {
			return err
		}
	}
	if err := c.quorum(ctx, have); err != nil {
		return err
	}
	if err := c.priority(ctx, want); err != nil {
		return err
	}
	if err := c.masterauth(ctx); err != nil {
		return err
	}
	stray := majority != "" && majority != self && own.Up && own.Role == "slave" && !own.Held() && own.MasterAddr != majority
	if !stray {
		c.straySince = time.Time{}
	} else if c.straySince.IsZero() {
		c.straySince = time.Now()
	}
	switch {
	case master == self && own.Up && own.Role != "master" && c.node(ctx, c.o.LocalRedis).Role != "master":
		// Sentinel still names this pod, whose Redis restarted (held) or
		// was demoted: the data decides (heldMaster).
		c.heldMaster(ctx, have, own)
		own = c.node(ctx, c.o.LocalRedis)
	case master == self && own.Role == "master" && c.o.Self >= want:
		// A scale-down removes this pod: hand the master to one that stays.
		if err := c.Handover(ctx); err != nil {
			return err
		}
		own = c.node(ctx, c.o.LocalRedis)
	case master != self && own.Held():
		// A Redis that just started: follow Sentinel's master. Sentinel
		// reconfigures the replicas of an old master it knows and converts
		// a stray master back to a replica, and a master that is not
		// Sentinel's may be a replica it is promoting right now: only a
		// replica no Sentinel fixes in time is the coordinator's (below).
		host, port, _ := net.SplitHostPort(master)
		if err := c.client(c.o.LocalRedis).Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
			return errors.Wrap(err, "cannot point Redis at the master")
		}
		own = c.node(ctx, c.o.LocalRedis)
	case stray && time.Since(c.straySince) > c.o.DownAfter && c.node(ctx, majority).Role == "master":
		// A replica of another pod than the Sentinels' master, for longer
		// than Sentinel takes to reconfigure the replicas it knows: one
		// replicating through another replica (that replica's pod came back
		// under the name it followed), out of the master's INFO, so no
		// Sentinel knows it. After a failover it would follow the old
		// master for good, and the new one refuse writes for want of a
		// replica (min-replicas-to-write): point it at the master.
		host, port, _ := net.SplitHostPort(majority)
		if err := c.client(c.o.LocalRedis).Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
			return errors.Wrap(err, "cannot point Redis at the master")
		}
		c.log.Info("This pod's Redis replicated from another pod than the Sentinels' master: pointed it at the master", "was", own.MasterAddr, "master", majority)
		c.straySince = time.Time{}
		own = c.node(ctx, c.o.LocalRedis)
	}
	if majority == "" {
		// Only a majority of Sentinels makes a master; replicas may be
		// labelled meanwhile.
		if r := roleOf(own, master, self); r != contract.RoleMaster {
			return c.label(ctx, have, r)
		}
		return c.label(ctx, have, "")
	}
	return c.label(ctx, have, roleOf(own, majority, self))
}

// heldMaster acts for a pod whose Redis is no master while a majority of
// Sentinels name it the master: it restarted (held, with what its disk had)
// or a failover is demoting it.
//
// Sentinel never promotes the master it names: it fails over to a replica
// it knows, and gives up on every replica whose link has been down for ten
// down-after periods longer than the master has been down. A held Redis
// refuses its replicas' SYNC (NOMASTERLINK), so once that happened (a
// Sentinel in TILT on a loaded machine, a fresh Sentinel that knows no
// replica) no Sentinel ever makes a master again. So the data decides:
//   - some other pod's Redis runs as master: a failover is under way, wait
//     for Sentinel to reconfigure this one;
//   - some other pod's Redis has a longer replication history, or cannot be
//     asked: a failover is the way (a replica may hold writes this pod's disk
//     lost), asked of this pod's Sentinel and, when it knows no replica to
//     promote, of the others in turn;
//   - every other pod's Redis answers, none has more data and no Sentinel is
//     failing over: this held Redis has every write any pod has, so the
//     coordinator promotes it, as Sentinel would have kept a master that
//     restarted in time. Its replicas follow it again (partial sync when
//     its disk had their history).
func (c *Coordinator) heldMaster(ctx context.Context, have int, own node) {
	peers := make([]node, 0, have)
	for i := range have {
		if i != c.o.Self {
			peers = append(peers, c.node(ctx, c.o.Addr(i)))
		}
	}
	switch heldAction(own, peers) {
	case promoteHeld:
		if c.failingOver(ctx, have) {
			return
		}
		c.log.Info("This pod's Redis restarted while it was the master and no other pod has more data: promoting it", "offset", own.Offset, "keys", own.Keys)
		if err := c.client(c.o.LocalRedis).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
			c.log.Info("Cannot promote this pod's Redis", "error", err.Error())
		}
	case askFailover:
		if time.Since(c.lastFailover) <= c.o.FailoverTimeout {
			return
		}
		c.lastFailover = time.Now()
		c.failover(ctx, have)
	case waitFailover:
	}
}

// What a coordinator does for its held Redis that Sentinel names master.
const (
	waitFailover = iota
	askFailover
	promoteHeld
)

// heldAction decides for a held Redis (own) that Sentinel names master, from
// what the instance's other Redis (peers) say of themselves.
func heldAction(own node, peers []node) int {
	if !own.Held() {
		// Demoted, not restarted: Sentinel's failover is under way.
		return askFailover
	}
	action := promoteHeld
	for _, p := range peers {
		switch {
		case p.Up && p.Role == "master":
			return waitFailover
		case !p.Up || better(p, own):
			action = askFailover
		}
	}
	return action
}

// failover asks this pod's Sentinel for a failover and, when it knows no
// replica it could promote (a Sentinel that just started learns replicas
// from the master's INFO, and a held master lists none), every other pod's
// Sentinel in turn, until one takes it.
func (c *Coordinator) failover(ctx context.Context, have int) {
	addrs := []string{c.o.LocalSentinel}
	for i := range have {
		if i != c.o.Self {
			addrs = append(addrs, c.o.SentinelAddr(i))
		}
	}
	for _, a := range addrs {
		err := c.client(a).Do(ctx, "SENTINEL", "FAILOVER", contract.SentinelMasterName).Err()
		c.log.Info("This pod's Redis restarted while it was the master and another pod may have more data: asked Sentinel for a failover", "sentinel", a, "error", fmt.Sprint(err))
		if err == nil || !strings.HasPrefix(err.Error(), "NOGOODSLAVE") {
			return
		}
	}
}

// failingOver reports whether a Sentinel that answers is failing the master
// over.
func (c *Coordinator) failingOver(ctx context.Context, have int) bool {
	for i := range have {
		addr := c.o.SentinelAddr(i)
		if i == c.o.Self {
			addr = c.o.LocalSentinel
		}
		m, err := c.client(addr).Do(ctx, "SENTINEL", "MASTER", contract.SentinelMasterName).StringSlice()
		if err != nil {
			continue
		}
		for j := 0; j+1 < len(m); j += 2 {
			if m[j] == "flags" && strings.Contains(m[j+1], "failover_in_progress") {
				return true
			}
		}
	}
	return false
}

// roleOf is the role label a pod whose Redis says n deserves: master only
// when a majority of Sentinels name it and it is one; replica when it
// replicates from the master with its link up; none otherwise.
func roleOf(n node, master, self string) string {
	switch {
	case !n.Up:
		return ""
	case n.Role == "master" && master == self:
		return contract.RoleMaster
	case n.Role == "slave" && n.MasterAddr == master && n.LinkUp:
		return contract.RoleReplica
	default:
		return ""
	}
}

// label writes this pod's role; a master first takes the label off every
// other pod, so the Service never selects two.
func (c *Coordinator) label(ctx context.Context, have int, role string) error {
	if role == contract.RoleMaster && (c.labels[c.o.Self] != role || time.Since(c.lastScan) > scanPeriod) {
		c.lastScan = time.Now()
		for i := range max(have, contract.MaxPods) {
			if i == c.o.Self {
				continue
			}
			r, exists, err := c.kube.Role(ctx, i)
			if err != nil {
				return errors.Wrapf(err, "cannot read the role of pod %d", i)
			}
			if exists && r == contract.RoleMaster {
				c.log.Info("Taking the master label off a demoted pod", "ordinal", i)
				if err := c.kube.SetRole(ctx, i, ""); err != nil {
					return errors.Wrapf(err, "cannot take the master label off pod %d", i)
				}
			}
		}
	}
	if last, ok := c.labels[c.o.Self]; ok && last == role {
		return nil
	}
	if err := c.kube.SetRole(ctx, c.o.Self, role); err != nil {
		return errors.Wrap(err, "cannot label this pod")
	}
	c.labels[c.o.Self] = role
	c.log.Info("Labelled this pod", "role", role)
	return nil
}

// runningMaster returns the address of the Redis that runs as master, the
// one with the most data if several do, or "".
func (c *Coordinator) runningMaster(ctx context.Context, have int) string {
	best, bestNode := "", node{}
	for i := range have {
		n := c.node(ctx, c.o.Addr(i))
		if n.Up && n.Role == "master" && (best == "" || better(n, bestNode)) {
			best, bestNode = c.o.Addr(i), n
		}
	}
	return best
}

// better orders candidates: the longest replication history, then the most
// keys (ties: the lower ordinal, which comes first).
func better(a, b node) bool {
	if a.Offset != b.Offset {
		return a.Offset > b.Offset
	}
	return a.Keys > b.Keys
}

// elect makes the first master of an instance whose Sentinels know none:
// the pod with the most data (an empty pod never wins over one with data).
// Only the lowest-ordinal pod whose Redis answers elects, and only once
// every pod answers, or after ColdStartWait a majority (of a restored
// instance: a majority with data).
func (c *Coordinator) elect(ctx context.Context, have int) error {
	type cand struct {
		i int
		n node
	}
	var up []cand
	for i := range have {
		if n := c.node(ctx, c.o.Addr(i)); n.Up {
			up = append(up, cand{i, n})
		}
	}
	if len(up) == 0 || up[0].i != c.o.Self {
		return nil
	}
	if len(up) < have && (len(up) <= have/2 || time.Since(c.started) < c.o.ColdStartWait) {
		c.log.Info("Waiting for every pod's Redis before electing the first master", "answering", len(up), "pods", have)
		return nil
	}
	sort.SliceStable(up, func(a, b int) bool { return better(up[a].n, up[b].n) })
	if c.o.Restored && len(up) < have && up[0].n.empty() {
		c.log.Info("Waiting for every pod's Redis before electing the first master: the instance restores a backup, and the pods that answer are empty", "answering", len(up), "pods", have)
		return nil
	}
	addr := c.o.Addr(up[0].i)
	c.log.Info("No Sentinel knows a master: electing one", "ordinal", up[0].i, "keys", up[0].n.Keys, "offset", up[0].n.Offset)
	if err := c.client(addr).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return errors.Wrapf(err, "cannot promote pod %d", up[0].i)
	}
	return nil
}

// monitor tells this pod's Sentinel to monitor master.
func (c *Coordinator) monitor(ctx context.Context, master string, have int) error {
	host, port, _ := net.SplitHostPort(master)
	s := c.client(c.o.LocalSentinel)
	c.log.Info("Telling this pod's Sentinel to monitor the master", "master", master)
	if err := s.Do(ctx, "SENTINEL", "MONITOR", contract.SentinelMasterName, host, port, strconv.Itoa(have/2+1)).Err(); err != nil {
		return errors.Wrap(err, "cannot make Sentinel monitor the master")
	}
	for _, kv := range [][2]string{
		{"auth-pass", c.o.Password},
		{"down-after-milliseconds", strconv.FormatInt(c.o.DownAfter.Milliseconds(), 10)},
		{"failover-timeout", strconv.FormatInt(c.o.FailoverTimeout.Milliseconds(), 10)},
		{"parallel-syncs", "1"},
	} {
		if err := s.Do(ctx, "SENTINEL", "SET", contract.SentinelMasterName, kv[0], kv[1]).Err(); err != nil {
			return errors.Wrapf(err, "cannot set Sentinel's %s", kv[0])
		}
	}
	return nil
}

// quorum keeps this Sentinel's quorum a majority of the pods.
func (c *Coordinator) quorum(ctx context.Context, have int) error {
	s := c.client(c.o.LocalSentinel)
	m, err := s.Do(ctx, "SENTINEL", "MASTER", contract.SentinelMasterName).StringSlice()
	if err != nil {
		return nil //nolint:nilerr // Not monitoring yet: monitor sets it.
	}
	q := strconv.Itoa(have/2 + 1)
	for i := 0; i+1 < len(m); i += 2 {
		if m[i] == "quorum" && m[i+1] != q {
			return errors.Wrap(s.Do(ctx, "SENTINEL", "SET", contract.SentinelMasterName, "quorum", q).Err(), "cannot set Sentinel's quorum")
		}
	}
	return nil
}

// priority makes Sentinel never promote a pod a scale-down removes.
func (c *Coordinator) priority(ctx context.Context, want int) error {
	p := priorityStay
	if c.o.Self >= want {
		p = priorityGo
	}
	r := c.client(c.o.LocalRedis)
	got, err := r.ConfigGet(ctx, "replica-priority").Result()
	if err != nil || got["replica-priority"] == p {
		return nil //nolint:nilerr // Redis down: nothing to set.
	}
	return errors.Wrap(r.ConfigSet(ctx, "replica-priority", p).Err(), "cannot set replica-priority")
}

// masterauth makes this pod's Redis authenticate to its master with the
// instance's password. auth.conf sets it only once the instance has replicas,
// and Crossplane may apply the StatefulSet of a scale-up from one pod before
// the Secret: a pod started then read the old auth.conf, and its Redis would
// retry its sync on NOAUTH for good.
func (c *Coordinator) masterauth(ctx context.Context) error {
	r := c.client(c.o.LocalRedis)
	got, err := r.ConfigGet(ctx, "masterauth").Result()
	if err != nil || got["masterauth"] == c.o.Password {
		return nil //nolint:nilerr // Redis down: nothing to set.
	}
	c.log.Info("This pod's Redis had no password for its master (its auth.conf predates the replicas): set it")
	return errors.Wrap(r.ConfigSet(ctx, "masterauth", c.o.Password).Err(), "cannot set masterauth")
}

// Handover makes this pod's Redis, the master, a replica without losing an
// acknowledged write: it pauses writes, waits (5 s at most) until every
// online replica has them all, asks Sentinel for a failover and waits (20 s
// at most) until this Redis is a replica. Writes that waited then fail with
// READONLY: never acknowledged here, so none is lost. The preStop hook of
// the redis container does the same in sh (internal/fn).
func (c *Coordinator) Handover(ctx context.Context) error {
	r := c.client(c.o.LocalRedis)
	if err := r.Do(ctx, "CLIENT", "PAUSE", "30000", "WRITE").Err(); err != nil {
		return errors.Wrap(err, "cannot pause writes")
	}
	defer func() { _ = r.Do(context.WithoutCancel(ctx), "CLIENT", "UNPAUSE").Err() }() // The pause ends by itself.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		info, err := r.Info(ctx, "replication").Result()
		if err != nil {
			return errors.Wrap(err, "cannot read replication")
		}
		if replicasCaughtUp(fields(info)) {
			break
		}
	}
	c.log.Info("Handing the master over")
	self := c.o.Addr(c.o.Self)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if n := c.node(ctx, c.o.LocalRedis); n.Up && n.Role != "master" {
			return nil
		}
		// Sentinel's own reconfiguration of this Redis waits behind its
		// hello messages, which the pause holds: follow the new master as
		// soon as Sentinel names it.
		if m, _ := c.sentinelMaster(ctx, c.o.LocalSentinel); m != "" && m != self {
			host, port, _ := net.SplitHostPort(m)
			if err := r.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
				return errors.Wrap(err, "cannot follow the new master")
			}
			continue
		}
		if time.Since(c.lastFailover) > 2*time.Second {
			c.lastFailover = time.Now()
			if err := c.client(c.o.LocalSentinel).Do(ctx, "SENTINEL", "FAILOVER", contract.SentinelMasterName).Err(); err != nil {
				c.log.Info("Sentinel refused the failover; retrying", "error", err.Error())
			}
		}
	}
	return errors.New("the master was not handed over within 20 s")
}

// replicasCaughtUp reports whether every online replica in an INFO
// replication reply has the master's offset.
func replicasCaughtUp(f map[string]string) bool {
	off := f["master_repl_offset"]
	for k, v := range f {
		if !strings.HasPrefix(k, "slave") || !strings.Contains(v, "state=online") {
			continue
		}
		if !strings.Contains(v+",", "offset="+off+",") {
			return false
		}
	}
	return true
}
