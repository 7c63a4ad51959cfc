// The Go worker of the mixed-language fault run
// (test/integration/mixed-language-faults.test.ts): the hash service with the
// behaviour of test/fixtures/fault-worker.ts.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	examplev1 "taskwire/test/go/gen/example/v1"

	"taskwire/go/taskwire"
)

func main() {
	log := os.Getenv("FAULT_LOG")
	if log == "" {
		fmt.Fprintln(os.Stderr, "fault worker: FAULT_LOG is not set")
		os.Exit(1)
	}
	taskwire.Main(examplev1.ImplementHashService(hasher{log: log}))
}

// hasher takes a few milliseconds, so kills land mid-task, and appends the
// task id to its log each time it completes (one line per execution, written
// before the result is returned, so it survives kill -9).
type hasher struct{ log string }

func (h hasher) Digest(ctx context.Context, task *taskwire.Task, request *examplev1.DigestRequest) (*examplev1.DigestResponse, error) {
	time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
	file, err := os.OpenFile(h.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	_, err = file.WriteString(task.ID + "\n")
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	return &examplev1.DigestResponse{Hex: request.GetText(), Rounds: 1}, nil
}
