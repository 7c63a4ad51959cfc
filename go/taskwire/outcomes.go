package taskwire

import (
	"context"

	"google.golang.org/protobuf/proto"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// deadLetter stores a task that failed for good in DEAD_<type>, with its
// WorkItem as submitted and its FAILED record, and waits for the PubAck.
func (t *served) deadLetter(ctx context.Context, item *taskwirev1.WorkItem, status *taskwirev1.TaskStatus) error {
	bytes, err := proto.Marshal(&taskwirev1.DeadLetter{Status: status, WorkItem: item, DeadAt: timestampNow()})
	if err != nil {
		return err
	}
	_, err = t.w.js.publish(ctx, deadLetterSubject(item.GetWorkerType(), idToken(item.GetTaskId())), bytes, nil)
	return err
}

// announce tells the submitter (the notify subject) and the result subject of
// a stored terminal record, over core NATS: best effort.
func (t *served) announce(item *taskwirev1.WorkItem, status *taskwirev1.TaskStatus, stored []byte) {
	nc := t.w.js.nc
	if subject := item.GetNotifySubject(); subject != "" {
		_ = nc.Publish(subject, stored)
	}
	if bytes, err := proto.Marshal(taskResultOf(status)); err == nil {
		_ = nc.Publish(resultSubject(status.GetWorkerType()), bytes)
	}
}

// taskResultOf is the TaskResult event of a terminal record.
func taskResultOf(status *taskwirev1.TaskStatus) *taskwirev1.TaskResult {
	result := &taskwirev1.TaskResult{
		TaskId:     status.GetTaskId(),
		Attempt:    status.GetAttempt(),
		WorkerId:   status.GetWorkerId(),
		StartedAt:  status.GetStartedAt(),
		FinishedAt: status.GetFinishedAt(),
		WorkerType: status.GetWorkerType(),
		Method:     status.GetMethod(),
	}
	switch {
	case status.GetState() == taskwirev1.TaskState_TASK_STATE_SUCCEEDED && status.GetResult() != nil:
		result.Outcome = &taskwirev1.TaskResult_Result{Result: status.GetResult()}
	case status.GetError() != nil:
		result.Outcome = &taskwirev1.TaskResult_Error{Error: status.GetError()}
	}
	return result
}
