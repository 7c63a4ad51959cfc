// The Go worker of the worker conformance suite (docs/worker-conformance.md):
// it serves the probe's worker types "probe" and "limited" with the probe's
// behaviour (test/fixtures/probe-worker.ts), configured by the environment
// every Taskwire worker process reads.
package main

import (
	"context"
	"fmt"
	"time"

	probev1 "taskwire/test/go/gen/probe/v1"

	"taskwire/go/taskwire"
)

func main() {
	taskwire.Main(probev1.ImplementProbeService(probe{}), probev1.ImplementLimitedProbeService(probe{}))
}

// probe runs each attempt as its request says (test/proto/probe/v1/probe.proto).
type probe struct{}

func (probe) Run(ctx context.Context, task *taskwire.Task, request *probev1.RunRequest) (*probev1.RunResponse, error) {
	started := time.Now()
	if request.GetNonRetryable() {
		return nil, taskwire.NonRetryable(fmt.Errorf("%s cannot work", request.GetLabel()))
	}
	if task.Attempt <= int(request.GetFailAttempts()) {
		return nil, fmt.Errorf("%s failed attempt %d", request.GetLabel(), task.Attempt)
	}
	sleep := time.Duration(request.GetSleepMs()) * time.Millisecond
	until := time.Now().Add(sleep)
	if sleep > 0 {
		if err := task.Progress(0.5, "half"); err != nil {
			return nil, err
		}
	}
	for left := sleep; left > 0; left = time.Until(until) {
		if !request.GetIgnoreSignal() && ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if request.GetHeartbeat() {
			task.Heartbeat()
		}
		time.Sleep(min(100*time.Millisecond, left))
	}
	return &probev1.RunResponse{
		Label:      request.GetLabel(),
		Attempt:    uint32(task.Attempt),
		WorkerId:   task.WorkerID,
		StartedMs:  float64(started.UnixMilli()),
		FinishedMs: float64(time.Now().UnixMilli()),
	}, nil
}
