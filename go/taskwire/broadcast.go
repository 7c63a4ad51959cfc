package taskwire

import (
	"context"
	"fmt"
	"strings"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// recordEndpoint records one endpoint's outcome in a broadcast task's record,
// merged into the current one by a conditional write (read and merged again on
// a conflict). The write that leaves every endpoint terminal ends the task:
// SUCCEEDED if all succeeded (with the first endpoint's result), else FAILED.
// Nil when the task already ended.
func recordEndpoint(
	ctx context.Context,
	store *statusStore,
	taskID, endpoint string,
	update func(*taskwirev1.EndpointResult),
) (*written, *taskwirev1.TaskStatus, error) {
	for {
		current, err := store.read(ctx, taskID)
		if err != nil {
			return nil, nil, err
		}
		status := current.status
		if status == nil {
			return nil, nil, Errorf(CodeDataLoss, "broadcast task %s has no status record", taskID)
		}
		if isTerminal(status.GetState()) {
			return nil, nil, nil
		}
		var result *taskwirev1.EndpointResult
		for _, e := range status.GetEndpoints() {
			if e.GetEndpoint() == endpoint {
				result = e
			}
		}
		if result == nil {
			result = &taskwirev1.EndpointResult{Endpoint: endpoint, State: taskwirev1.TaskState_TASK_STATE_PENDING}
			status.Endpoints = append(status.Endpoints, result)
		}
		update(result)
		endBroadcast(status)
		stored, err := store.write(ctx, status, current.revision)
		if err != nil {
			return nil, nil, err
		}
		if stored != nil {
			return stored, status, nil
		}
	}
}

// endBroadcast ends a broadcast's record whose endpoints have all ended, or
// moves it from PENDING to RUNNING at its first endpoint's outcome.
func endBroadcast(status *taskwirev1.TaskStatus) {
	var failed []*taskwirev1.EndpointResult
	for _, e := range status.GetEndpoints() {
		if !isTerminal(e.GetState()) {
			if status.GetState() == taskwirev1.TaskState_TASK_STATE_PENDING {
				status.State = taskwirev1.TaskState_TASK_STATE_RUNNING
			}
			return
		}
		if e.GetState() != taskwirev1.TaskState_TASK_STATE_SUCCEEDED {
			failed = append(failed, e)
		}
	}
	status.FinishedAt = timestampNow()
	if len(failed) == 0 {
		status.State = taskwirev1.TaskState_TASK_STATE_SUCCEEDED
		if len(status.GetEndpoints()) > 0 {
			status.Result = status.GetEndpoints()[0].GetResult()
		}
		return
	}
	status.State = taskwirev1.TaskState_TASK_STATE_FAILED
	parts := make([]string, len(failed))
	for i, e := range failed {
		why := e.GetError().GetMessage()
		if e.GetError() == nil {
			why = stateName(e.GetState())
		}
		parts[i] = fmt.Sprintf("%s (%s)", e.GetEndpoint(), why)
	}
	code := failed[0].GetError().GetCode()
	if failed[0].GetError() == nil {
		code = CodeUnknown
	}
	status.Error = &taskwirev1.TaskError{
		Code:       code,
		Message:    "failed on " + strings.Join(parts, ", "),
		OccurredAt: timestampNow(),
	}
}
