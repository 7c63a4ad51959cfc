package taskwire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

const (
	// statusInterval is how often an attempt writes RUNNING and progress at most.
	statusInterval = 250 * time.Millisecond
	// presenceTTL is how long a worker instance counts as live after its last refresh.
	presenceTTL = 15 * time.Second
	// defaultConcurrency is a type's slots when neither its proto nor the options say.
	defaultConcurrency = 16
	// defaultMaxResultBytes caps a result's size when the type's retention does not.
	defaultMaxResultBytes = 1_000_000
	// cancelledKept is how many cancelled task ids a worker remembers.
	cancelledKept = 10_000
	// minimumServerVersion is the oldest nats-server Taskwire runs on.
	minimumServerVersion = "2.12.0"
)

var workerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Options configure a Worker.
type Options struct {
	// Conn is the NATS connection; the worker does not close it.
	Conn *nats.Conn
	// WorkerID names this instance in records and presence: 1-64 letters, digits, "-", "_".
	WorkerID string
	// Concurrency, when set, is every type's handler slots, over the proto's `concurrency`.
	Concurrency int
	// ShutdownGrace is how long running handlers may finish once Run's context ends (0: 30 s).
	ShutdownGrace time.Duration
	// MaxResultBytes is the deployment's retention.maxResultBytes: the largest
	// result kept where a type's own retention sets none (0: 1,000,000).
	MaxResultBytes int
	// JetStreamDomain or JetStreamAPIPrefix, when set, address JetStream's API elsewhere.
	JetStreamDomain    string
	JetStreamAPIPrefix string
	// Logger receives the worker's logs (nil: slog.Default(), with the worker's id).
	Logger *slog.Logger
	// Ready, when set, is called once the worker serves every type.
	Ready func(workerTypes []string)
}

// Worker runs the tasks of its services' worker types.
type Worker struct {
	opts     Options
	services []Service
	id       string
	log      *slog.Logger
	js       *js
	store    *statusStore

	draining   atomic.Bool
	attempts   sync.WaitGroup
	throughput *throughput
	startedAt  *timestamppb.Timestamp

	mu        sync.Mutex
	running   map[string]*attempt
	cancelled map[string]struct{}
	cancelOrd []string
	served    []*served
}

// served is one worker type being served.
type served struct {
	w              *Worker
	svc            Service
	methods        map[string]Method
	slots          *prioritySlots
	concurrency    *leases
	rate           *leases
	prefetch       int
	ackWait        time.Duration
	heartbeat      time.Duration
	maxResultBytes int
	feeds          []*feed
	pauseEnd       *time.Timer
}

// NewWorker checks the options and services; Run serves them.
func NewWorker(opts Options, services ...Service) (*Worker, error) {
	if opts.Conn == nil {
		return nil, errors.New("taskwire: Options.Conn is required")
	}
	if !workerIDPattern.MatchString(opts.WorkerID) {
		return nil, fmt.Errorf("taskwire: worker id %q must be 1-64 letters, digits, '-' or '_'", opts.WorkerID)
	}
	if len(services) == 0 {
		return nil, errors.New("taskwire: no services to serve")
	}
	seen := map[string]bool{}
	for _, s := range services {
		if s.WorkerType == "" || seen[s.WorkerType] {
			return nil, fmt.Errorf("taskwire: worker type %q is empty or served twice", s.WorkerType)
		}
		seen[s.WorkerType] = true
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default().With("worker", opts.WorkerID)
	}
	api := "$JS.API"
	switch {
	case opts.JetStreamAPIPrefix != "":
		api = strings.TrimSuffix(opts.JetStreamAPIPrefix, ".")
	case opts.JetStreamDomain != "":
		api = "$JS." + opts.JetStreamDomain + ".API"
	}
	j := &js{nc: opts.Conn, api: api}
	return &Worker{
		opts:      opts,
		services:  services,
		id:        opts.WorkerID,
		log:       logger,
		js:        j,
		running:   map[string]*attempt{},
		cancelled: map[string]struct{}{},
	}, nil
}

// ID is the worker instance's id.
func (w *Worker) ID() string { return w.id }

// WorkerTypes are the types it serves.
func (w *Worker) WorkerTypes() []string {
	types := make([]string, len(w.services))
	for i, s := range w.services {
		types[i] = s.WorkerType
	}
	return types
}

// Run waits for the types' streams and consumers, serves them until ctx ends,
// then drains: it stops pulling, gives back what never started, lets running
// handlers finish within the grace period, gives back those it interrupts,
// and leaves the presence bucket. It returns nil once drained.
func (w *Worker) Run(ctx context.Context) error {
	if err := checkServerVersion(w.opts.Conn); err != nil {
		return err
	}
	stream, err := w.newJetStream()
	if err != nil {
		return err
	}
	statusInfo, err := w.waitForStreams(ctx, stream)
	if err != nil || ctx.Err() != nil {
		return err
	}
	w.store = &statusStore{js: w.js, ttls: statusTTLs(w.services, statusInfo.Config.MaxAge)}
	presence, err := w.openPresence(ctx, stream, statusInfo)
	if err != nil {
		return err
	}
	w.startedAt = timestamppb.Now()
	w.throughput = startThroughput(w.opts.Conn)
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}()
	for _, svc := range w.services {
		t, typeSubs, err := w.serve(ctx, stream, svc)
		subs = append(subs, typeSubs...)
		if err != nil {
			w.shutdown(presence)
			return err
		}
		w.mu.Lock()
		w.served = append(w.served, t)
		w.mu.Unlock()
		if _, err := presence.Put(ctx, svc.WorkerType+"."+w.id, w.instance()); err != nil {
			w.shutdown(presence)
			return fmt.Errorf("announcing worker %s: %w", w.id, err)
		}
	}
	refresh := make(chan struct{})
	var refreshing sync.WaitGroup
	refreshing.Go(func() { w.refreshPresence(presence, refresh) })
	w.log.Info("serving", "types", w.WorkerTypes())
	if w.opts.Ready != nil {
		w.opts.Ready(w.WorkerTypes())
	}
	<-ctx.Done()
	close(refresh)
	refreshing.Wait()
	w.shutdown(presence)
	return nil
}

func (w *Worker) newJetStream() (jetstream.JetStream, error) {
	switch {
	case w.opts.JetStreamAPIPrefix != "":
		return jetstream.NewWithAPIPrefix(w.opts.Conn, w.opts.JetStreamAPIPrefix)
	case w.opts.JetStreamDomain != "":
		return jetstream.NewWithDomain(w.opts.Conn, w.opts.JetStreamDomain)
	}
	return jetstream.New(w.opts.Conn)
}

// waitForStreams polls every second until the status bucket and every type's
// streams and consumers exist (made by the gateway, TypeScript workers or
// `taskwire migrate`), saying so on the first miss and about once a minute.
func (w *Worker) waitForStreams(ctx context.Context, stream jetstream.JetStream) (*jetstream.StreamInfo, error) {
	var firstMiss time.Time
	lastSaid := time.Time{}
	for {
		info, missing, err := w.provisioned(ctx, stream)
		if err != nil {
			return nil, err
		}
		if missing == "" {
			if !firstMiss.IsZero() {
				w.log.Info("the streams are in place", "waited", time.Since(firstMiss).Round(time.Second).String())
			}
			return info, nil
		}
		if firstMiss.IsZero() {
			firstMiss = time.Now()
		}
		if time.Since(lastSaid) >= time.Minute {
			lastSaid = time.Now()
			w.log.Warn("waiting for " + missing + ": a gateway, a TypeScript worker or `taskwire migrate` creates it")
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(time.Second):
		}
	}
}

// provisioned is the status stream's info, or the first thing missing.
func (w *Worker) provisioned(ctx context.Context, stream jetstream.JetStream) (*jetstream.StreamInfo, string, error) {
	status, err := stream.Stream(ctx, statusStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, "bucket " + statusBucket, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading stream %s: %w", statusStream, err)
	}
	for _, svc := range w.services {
		for _, name := range []string{taskStream(svc.WorkerType), broadcastStream(svc.WorkerType)} {
			if _, err := stream.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
				return nil, "stream " + name, nil
			} else if err != nil {
				return nil, "", fmt.Errorf("reading stream %s: %w", name, err)
			}
		}
		for _, priority := range priorities {
			name := consumerName(svc.WorkerType, priority)
			if _, err := stream.Consumer(ctx, taskStream(svc.WorkerType), name); errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, "consumer " + name, nil
			} else if err != nil {
				return nil, "", fmt.Errorf("reading consumer %s: %w", name, err)
			}
		}
	}
	return status.CachedInfo(), "", nil
}

// openPresence opens taskwire_workers, creating it if missing with the status
// bucket's replicas and storage.
func (w *Worker) openPresence(ctx context.Context, stream jetstream.JetStream, status *jetstream.StreamInfo) (jetstream.KeyValue, error) {
	kv, err := stream.KeyValue(ctx, workersBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = stream.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   workersBucket,
			History:  1,
			TTL:      presenceTTL,
			Replicas: status.Config.Replicas,
			Storage:  status.Config.Storage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = stream.KeyValue(ctx, workersBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", workersBucket, err)
	}
	return kv, nil
}

// serve starts serving one worker type: its cancel and control subjects, its
// broadcast consumer, its limits and its feeds.
func (w *Worker) serve(ctx context.Context, stream jetstream.JetStream, svc Service) (*served, []*nats.Subscription, error) {
	typ := svc.WorkerType
	// The consumers' ack_wait, read once: it sets the heartbeat, the pull expiry and the lease TTL.
	normal, err := stream.Consumer(ctx, taskStream(typ), consumerName(typ, "normal"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading consumer %s: %w", consumerName(typ, "normal"), err)
	}
	ackWait := normal.CachedInfo().Config.AckWait
	concurrency := svc.Concurrency
	if w.opts.Concurrency > 0 {
		concurrency = w.opts.Concurrency
	}
	if concurrency <= 0 {
		concurrency = defaultConcurrency
	}
	t := &served{
		w:              w,
		svc:            svc,
		methods:        map[string]Method{},
		slots:          newPrioritySlots(concurrency, len(priorities), 5*time.Second, time.Now),
		prefetch:       concurrency,
		ackWait:        ackWait,
		heartbeat:      max(100*time.Millisecond, ackWait/3),
		maxResultBytes: svc.MaxResultBytes,
	}
	if t.maxResultBytes <= 0 {
		t.maxResultBytes = w.opts.MaxResultBytes
	}
	if t.maxResultBytes <= 0 {
		t.maxResultBytes = defaultMaxResultBytes
	}
	for _, m := range svc.Methods {
		t.methods[m.Name] = m
	}
	if svc.MaxConcurrency > 0 {
		t.concurrency = newLeases(w.js, typ, "run", svc.MaxConcurrency, ackWait)
	}
	if svc.MaxRate > 0 {
		t.rate = rateLeases(w.js, typ, svc.MaxRate)
	}
	var subs []*nats.Subscription
	cancelSub, err := w.opts.Conn.Subscribe(cancelSubject(typ), func(msg *nats.Msg) { w.cancel(string(msg.Data)) })
	if err != nil {
		return nil, subs, err
	}
	subs = append(subs, cancelSub)
	controlSub, err := w.opts.Conn.Subscribe(controlSubject(typ), func(msg *nats.Msg) { t.control(string(msg.Data)) })
	if err != nil {
		return nil, subs, err
	}
	subs = append(subs, controlSub)
	// Its own broadcast consumer, with the type's ack_wait in place.
	endpoint, err := stream.CreateOrUpdateConsumer(ctx, broadcastStream(typ), jetstream.ConsumerConfig{
		Durable:       endpointConsumer(typ, w.id),
		FilterSubject: broadcastFilter(typ, w.id),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, subs, fmt.Errorf("creating consumer %s: %w", endpointConsumer(typ, w.id), err)
	}
	consumers := make([]jetstream.Consumer, 0, len(priorities)+1)
	for _, priority := range priorities {
		consumer, err := stream.Consumer(ctx, taskStream(typ), consumerName(typ, priority))
		if err != nil {
			return nil, subs, fmt.Errorf("reading consumer %s: %w", consumerName(typ, priority), err)
		}
		consumers = append(consumers, consumer)
	}
	for rank, consumer := range consumers {
		t.feeds = append(t.feeds, startFeed(t, consumer, rank))
	}
	// Broadcast copies are served with "high".
	t.feeds = append(t.feeds, startFeed(t, endpoint, 0))
	return t, subs, nil
}

// control handles "paused <RFC 3339 end>" (hold the type's slots until then)
// and "resumed" (free them, and pull again at once).
func (t *served) control(message string) {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	if t.pauseEnd != nil {
		t.pauseEnd.Stop()
		t.pauseEnd = nil
	}
	what, until, _ := strings.Cut(message, " ")
	if what != "paused" {
		t.resume()
		return
	}
	t.slots.hold()
	end, err := time.Parse(time.RFC3339Nano, until)
	if err != nil {
		return
	}
	// A little after the server lifts it: a pull made while still paused would wait unserved.
	if wait := time.Until(end) + 100*time.Millisecond; wait < 100*365*24*time.Hour {
		t.pauseEnd = time.AfterFunc(wait, t.resume)
	}
}

func (t *served) resume() {
	t.slots.unhold()
	for _, f := range t.feeds {
		f.repull()
	}
}

// cancel aborts a running task whose id came on the cancel subject, and
// remembers the id for deliveries still to come.
func (w *Worker) cancel(taskID string) {
	w.mu.Lock()
	if _, known := w.cancelled[taskID]; !known {
		w.cancelled[taskID] = struct{}{}
		w.cancelOrd = append(w.cancelOrd, taskID)
		if len(w.cancelOrd) > cancelledKept {
			delete(w.cancelled, w.cancelOrd[0])
			w.cancelOrd = w.cancelOrd[1:]
		}
	}
	a := w.running[taskID]
	w.mu.Unlock()
	if a != nil {
		a.abortWith(causeCancelled)
	}
}

// wasCancelled: the task's id came on the cancel subject, and its record is
// terminal (read, for an id may name a new task by now).
func (w *Worker) wasCancelled(ctx context.Context, taskID string) (bool, error) {
	w.mu.Lock()
	_, known := w.cancelled[taskID]
	w.mu.Unlock()
	if !known {
		return false, nil
	}
	current, err := w.store.read(ctx, taskID)
	if err != nil {
		return false, err
	}
	if current.status != nil && isTerminal(current.status.GetState()) {
		return true, nil
	}
	w.mu.Lock()
	delete(w.cancelled, taskID)
	w.mu.Unlock()
	return false, nil
}

func (w *Worker) track(taskID string, a *attempt) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running[taskID] = a
}

func (w *Worker) untrack(taskID string, a *attempt) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running[taskID] == a {
		delete(w.running, taskID)
	}
}

// instance is this worker as its presence tells it (WorkerService).
func (w *Worker) instance() []byte {
	w.mu.Lock()
	running := map[string]uint32{}
	for taskID := range w.running {
		running[workerTypeOf(taskID)]++
	}
	var types []*taskwirev1.WorkerTypeLoad
	for _, t := range w.served {
		types = append(types, &taskwirev1.WorkerTypeLoad{
			WorkerType:  t.svc.WorkerType,
			Running:     running[t.svc.WorkerType],
			Concurrency: uint32(t.prefetch),
		})
	}
	w.mu.Unlock()
	host, _ := os.Hostname()
	bytes, _ := proto.Marshal(&taskwirev1.WorkerInstance{
		WorkerId:  w.id,
		Host:      host,
		Pid:       uint32(os.Getpid()),
		Types:     types,
		StartedAt: w.startedAt,
		Runtime:   "go " + strings.TrimPrefix(runtime.Version(), "go"),
	})
	return bytes
}

// refreshPresence puts this instance under each of its keys every 5 s, until stop closes.
func (w *Worker) refreshPresence(kv jetstream.KeyValue, stop <-chan struct{}) {
	ticker := time.NewTicker(presenceTTL / 3)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			instance := w.instance()
			for _, typ := range w.WorkerTypes() {
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				if _, err := kv.Put(ctx, typ+"."+w.id, instance); err != nil {
					w.log.Warn("refreshing the worker's presence", "error", err)
				}
				cancel()
			}
		}
	}
}

// shutdown drains: no longer live, no more pulls (what waits is given back),
// running handlers get the grace period, then are interrupted and given back.
func (w *Worker) shutdown(presence jetstream.KeyValue) {
	w.draining.Store(true)
	w.mu.Lock()
	served := w.served
	w.mu.Unlock()
	// No longer live: broadcasts to "every worker" leave it out from now on.
	for _, t := range served {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		_ = presence.Delete(ctx, t.svc.WorkerType+"."+w.id)
		cancel()
	}
	for _, t := range served {
		w.mu.Lock()
		if t.pauseEnd != nil {
			t.pauseEnd.Stop()
		}
		w.mu.Unlock()
		for _, f := range t.feeds {
			f.shutdown()
		}
	}
	finished := make(chan struct{})
	go func() {
		w.attempts.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(w.opts.ShutdownGrace):
		w.mu.Lock()
		interrupted := make([]*attempt, 0, len(w.running))
		for _, a := range w.running {
			interrupted = append(interrupted, a)
		}
		w.mu.Unlock()
		w.log.Warn("the grace period is over: interrupting the handlers still running", "count", len(interrupted))
		for _, a := range interrupted {
			a.abortWith(causeShutdown)
		}
		<-finished
	}
	for _, t := range served {
		for _, f := range t.feeds {
			f.wait()
		}
	}
	w.throughput.close()
}

// checkServerVersion refuses a nats-server older than 2.12, or one without JetStream.
func checkServerVersion(nc *nats.Conn) error {
	version := nc.ConnectedServerVersion()
	if version == "" {
		return errors.New("not connected to NATS")
	}
	if compareVersions(version, minimumServerVersion) < 0 {
		return fmt.Errorf("nats-server %s is too old: Taskwire needs %s or newer", version, minimumServerVersion)
	}
	return nil
}

// compareVersions compares dotted versions numerically ("2.12.0" > "2.9.1"), ignoring suffixes.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range 3 {
		var x, y int
		if i < len(pa) {
			_, _ = fmt.Sscanf(pa[i], "%d", &x)
		}
		if i < len(pb) {
			_, _ = fmt.Sscanf(pb[i], "%d", &y)
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
