package taskwire

import (
	"context"
	"encoding/json"
	"strconv"

	"google.golang.org/protobuf/proto"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// Child tasks ("Child tasks" in docs/protocol.md): a task whose record names a
// parent tells the parent's counters when it ends, before its message is
// acked (a redelivery tells again: counted once), and resumes the parent when
// it was the last child the parent waits for.

// countChild counts a child that ended in its parent's counters.
func countChild(ctx context.Context, j *js, store *statusStore, child *taskwirev1.TaskStatus) error {
	parentID := child.GetParentTaskId()
	if parentID == "" {
		return nil
	}
	typ, token := workerTypeOf(parentID), idToken(parentID)
	var failed bool
	switch child.GetState() {
	case taskwirev1.TaskState_TASK_STATE_FAILED, taskwirev1.TaskState_TASK_STATE_CANCELLED, taskwirev1.TaskState_TASK_STATE_EXPIRED:
		failed = child.GetChildFailure() != taskwirev1.ChildFailure_CHILD_FAILURE_IGNORE
	}
	fatal := failed && (child.GetChildFailure() == taskwirev1.ChildFailure_CHILD_FAILURE_UNSPECIFIED ||
		child.GetChildFailure() == taskwirev1.ChildFailure_CHILD_FAILURE_FAIL_PARENT)
	if failed {
		if _, err := increment(ctx, j, childrenCounter(typ, token, "failed"), child.GetTaskId()+"/failed"); err != nil {
			return err
		}
	}
	if fatal {
		h := header("Nats-Msg-Id", child.GetTaskId()+"/fatal")
		if _, err := j.publish(ctx, fatalChildSubject(typ, token), []byte(child.GetTaskId()), h); err != nil {
			return err
		}
	}
	subject := childrenCounter(typ, token, "ended")
	value, err := increment(ctx, j, subject, child.GetTaskId()+"/ended")
	if err != nil {
		return err
	}
	if value == nil {
		// A repeat says nothing of the value: read it (the first call may have died before resuming).
		now, err := counterValue(ctx, j, typ, subject)
		if err != nil {
			return err
		}
		value = &now
	}
	if *value == 0 || fatal {
		return resumeParent(ctx, j, store, parentID)
	}
	return nil
}

// increment adds 1 to a counter once per messageID: its value after, or nil for a repeat.
func increment(ctx context.Context, j *js, subject, messageID string) (*int64, error) {
	ack, err := j.publish(ctx, subject, nil, header("Nats-Incr", "+1", "Nats-Msg-Id", messageID))
	if err != nil {
		return nil, err
	}
	if ack.Duplicate || ack.Value == "" {
		return nil, nil
	}
	value, err := strconv.ParseInt(ack.Value, 10, 64)
	if err != nil {
		return nil, err
	}
	return &value, nil
}

// counterValue is a counter's value, 0 when it has none yet.
func counterValue(ctx context.Context, j *js, typ, subject string) (int64, error) {
	msg, err := j.lastOn(ctx, childrenStream(typ), subject)
	if err != nil || msg == nil {
		return 0, err
	}
	var counter struct {
		Val string `json:"val"`
	}
	if err := json.Unmarshal(msg.data, &counter); err != nil {
		return 0, err
	}
	return strconv.ParseInt(counter.Val, 10, 64)
}

// resumeParent queues a WAITING parent again once its children have all
// ended (or one whose failure fails it did): its kept WorkItem, one resume
// more, on its task subject, then its record PENDING.
func resumeParent(ctx context.Context, j *js, store *statusStore, parentID string) error {
	parent, err := store.read(ctx, parentID)
	if err != nil || parent.status.GetState() != taskwirev1.TaskState_TASK_STATE_WAITING {
		return err
	}
	typ, token := workerTypeOf(parentID), idToken(parentID)
	ended, err := counterValue(ctx, j, typ, childrenCounter(typ, token, "ended"))
	if err != nil {
		return err
	}
	// The counter holds the children ended less those spawned at the last wait.
	if ended < 0 {
		marker, err := j.lastOn(ctx, indexStream(typ), fatalChildSubject(typ, token))
		if err != nil || marker == nil {
			return err
		}
	}
	parked, err := j.lastOn(ctx, schedulerStream(typ), parkedSubject(typ, token))
	if err != nil || parked == nil {
		return err
	}
	item := &taskwirev1.WorkItem{}
	if err := proto.Unmarshal(parked.data, item); err != nil {
		return err
	}
	item.Resumes++
	bytes, err := proto.Marshal(item)
	if err != nil {
		return err
	}
	h := header("Nats-Msg-Id", parentID+"/resume/"+strconv.FormatUint(uint64(item.GetResumes()), 10))
	if _, err := j.publish(ctx, taskSubject(item), bytes, h); err != nil {
		if isQueuedAlready(err) {
			// Queued already: whoever queued it writes its record.
			return nil
		}
		return err
	}
	parent.status.State = taskwirev1.TaskState_TASK_STATE_PENDING
	_, err = store.write(ctx, parent.status, parent.revision)
	return err
}
