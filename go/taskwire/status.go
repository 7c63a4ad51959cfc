package taskwire

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// statusStore reads and writes records of the status bucket (taskwire_status).
type statusStore struct {
	js *js
	// ttls are the Nats-TTL values of the types whose retention.status is
	// shorter than the bucket's TTL.
	ttls map[string]string
}

// record is a status key as read: its record, if any, and the revision a
// conditional write names (the record's, or a delete marker's; 0 for nothing).
type record struct {
	status   *taskwirev1.TaskStatus
	revision uint64
}

// read reads a task's status key.
func (s *statusStore) read(ctx context.Context, taskID string) (record, error) {
	msg, err := s.js.lastOn(ctx, statusStream, statusSubject(taskID))
	if err != nil || msg == nil {
		return record{}, err
	}
	if len(msg.data) == 0 {
		// A delete or purge marker: no record, but a write names its sequence.
		return record{revision: msg.seq}, nil
	}
	status := &taskwirev1.TaskStatus{}
	if err := proto.Unmarshal(msg.data, status); err != nil {
		return record{}, fmt.Errorf("the status record of %s does not decode: %w", taskID, err)
	}
	return record{status: status, revision: msg.seq}, nil
}

// written is a stored write: its revision and its bytes.
type written struct {
	revision uint64
	bytes    []byte
}

// write stores a record only if the key is still at expected (0: holds
// nothing). Nil, nil when someone else wrote first.
func (s *statusStore) write(ctx context.Context, status *taskwirev1.TaskStatus, expected uint64) (*written, error) {
	status.UpdatedAt = timestampNow()
	bytes, err := proto.Marshal(status)
	if err != nil {
		return nil, err
	}
	h := header("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(expected, 10))
	if ttl, ok := s.ttls[status.GetWorkerType()]; ok {
		h.Set("Nats-TTL", ttl)
	}
	ack, err := s.js.publish(ctx, statusSubject(status.GetTaskId()), bytes, h)
	if isWrongLastSequence(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if isTerminal(status.GetState()) {
		s.index(status)
	}
	return &written{revision: ack.Seq, bytes: bytes}, nil
}

// index adds a task to its state's entries in INDEX_<type>: best effort, after the record.
func (s *statusStore) index(status *taskwirev1.TaskStatus) {
	_ = s.js.nc.Publish(indexStateSubject(status.GetWorkerType(), status.GetState()), []byte(status.GetTaskId()))
}

// lost is why an attempt writes nothing more: a terminal record written by
// someone else, or a later delivery's record.
type lost int

const (
	notLost lost = iota
	lostSuperseded
	lostOvertaken
)

// statusWriter writes one attempt's record. RUNNING and progress are
// coalesced into at most one best-effort write per interval, none for an
// attempt that ends within it; the attempt's outcome is a durable conditional
// write that never overwrites a terminal record of someone else.
type statusWriter struct {
	store    *statusStore
	interval time.Duration
	// onLost is called once when a best-effort write finds the attempt lost the record.
	onLost func(lost)
	logger func(error)

	mu       sync.Mutex // held by a write in progress
	state    sync.Mutex // guards the fields below
	status   *taskwirev1.TaskStatus
	revision uint64
	timer    *time.Timer
	finished bool
	lost     lost
	listed   bool
}

// touch schedules a best-effort write of the current record within the interval.
func (w *statusWriter) touch() {
	w.state.Lock()
	defer w.state.Unlock()
	if w.timer != nil || w.finished || w.lost != notLost {
		return
	}
	w.timer = time.AfterFunc(w.interval, func() {
		w.state.Lock()
		w.timer = nil
		w.state.Unlock()
		w.writeBestEffort()
	})
}

// update changes the record under the writer's lock (for progress).
func (w *statusWriter) update(change func(*taskwirev1.TaskStatus)) {
	w.state.Lock()
	defer w.state.Unlock()
	change(w.status)
}

func (w *statusWriter) writeBestEffort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Two tries: a conflict with a non-terminal record (an earlier attempt's)
	// only tells the revision to write over.
	for tries := 0; tries < 2; tries++ {
		w.state.Lock()
		done := w.finished || w.lost != notLost
		w.state.Unlock()
		if done {
			return
		}
		ok, err := w.writeOnce(context.Background())
		if err != nil {
			w.logger(err)
			return
		}
		if ok != nil {
			return
		}
		if l := w.lostNow(); l != notLost {
			w.onLost(l)
			return
		}
	}
}

// begin durably writes the record now, before the handler runs (the recorded start).
func (w *statusWriter) begin(ctx context.Context) (*written, lost, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeDurably(ctx)
}

// finish durably writes the record as change makes it: the outcome.
func (w *statusWriter) finish(ctx context.Context, change func(*taskwirev1.TaskStatus)) (*written, lost, error) {
	w.state.Lock()
	w.finished = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.state.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if l := w.lostNow(); l != notLost {
		return nil, l, nil
	}
	w.state.Lock()
	change(w.status)
	w.state.Unlock()
	return w.writeDurably(ctx)
}

func (w *statusWriter) writeDurably(ctx context.Context) (*written, lost, error) {
	for {
		stored, err := w.writeOnce(ctx)
		if err != nil || stored != nil {
			return stored, notLost, err
		}
		if l := w.lostNow(); l != notLost {
			return nil, l, nil
		}
	}
}

func (w *statusWriter) lostNow() lost {
	w.state.Lock()
	defer w.state.Unlock()
	return w.lost
}

// writeOnce is one conditional write of the current record. On a conflict it
// reads the record: a terminal one, or one a later delivery wrote, ends this
// attempt's writes; any other gives the revision to write over next.
func (w *statusWriter) writeOnce(ctx context.Context) (*written, error) {
	w.state.Lock()
	status := proto.Clone(w.status).(*taskwirev1.TaskStatus)
	revision := w.revision
	w.state.Unlock()
	stored, err := w.store.write(ctx, status, revision)
	if err != nil {
		return nil, err
	}
	if stored != nil {
		w.state.Lock()
		w.revision = stored.revision
		w.status.UpdatedAt = status.GetUpdatedAt()
		// The attempt's first stored RUNNING lists it among the type's running tasks.
		first := status.GetState() == taskwirev1.TaskState_TASK_STATE_RUNNING && !w.listed
		w.listed = w.listed || first
		w.state.Unlock()
		if first {
			w.store.index(status)
		}
		return stored, nil
	}
	current, err := w.store.read(ctx, status.GetTaskId())
	if err != nil {
		return nil, err
	}
	w.state.Lock()
	defer w.state.Unlock()
	switch {
	case current.status != nil && isTerminal(current.status.GetState()):
		w.lost = lostSuperseded
	case current.status != nil && overtaken(current.status, deliveryOfRecord(w.status)):
		w.lost = lostOvertaken
	default:
		// A first write meeting a record: RetryDeadLetter wrote one since the
		// delivery began, which keeps the errors of the runs before.
		if current.status != nil && w.revision == 0 {
			w.status.ErrorHistory = append(current.status.GetErrorHistory(), w.status.GetErrorHistory()...)
			w.status.ReturnedDeliveries = current.status.GetReturnedDeliveries()
		}
		w.revision = current.revision
	}
	return nil, nil
}

// snapshot is a copy of the record as this attempt sees it.
func (w *statusWriter) snapshot() *taskwirev1.TaskStatus {
	w.state.Lock()
	defer w.state.Unlock()
	return proto.Clone(w.status).(*taskwirev1.TaskStatus)
}

// statusTTLs are the Nats-TTL values of the services whose retention.status
// is shorter than the status bucket's TTL (bucketTTL, 0 for none).
func statusTTLs(services []Service, bucketTTL time.Duration) map[string]string {
	ttls := map[string]string{}
	for _, s := range services {
		if s.StatusTTL > 0 && (bucketTTL == 0 || s.StatusTTL < bucketTTL) {
			seconds := max(1, int64((s.StatusTTL+time.Second-1)/time.Second))
			ttls[s.WorkerType] = strconv.FormatInt(seconds, 10) + "s"
		}
	}
	return ttls
}
