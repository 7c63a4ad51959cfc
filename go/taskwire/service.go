package taskwire

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Service is one worker type a worker serves, as protoc-gen-taskwire-go's
// Implement<Service> function makes it from the service's
// `(taskwire.v1.worker)` option and a handler.
type Service struct {
	// WorkerType is the type's name: its queue is TASKS_<WorkerType>.
	WorkerType string
	// Concurrency is how many of its tasks one worker runs at once (0: 16).
	Concurrency int
	// MaxConcurrency caps the attempts running at once across all workers (0: no cap).
	MaxConcurrency int
	// MaxRate caps the attempts started per second across all workers (0: no cap).
	MaxRate float64
	// StatusTTL is the type's retention.status: records kept for less than the
	// status bucket keeps them carry it as their Nats-TTL (0: the bucket's).
	StatusTTL time.Duration
	// MaxResultBytes caps a result's encoded size (0: 1,000,000).
	MaxResultBytes int
	// Methods are the type's task methods, by their proto names.
	Methods []Method
}

// Method is one task method: its name, the request type it decodes, and its handler.
type Method struct {
	// Name is the rpc's name in the proto ("Run").
	Name string
	// Input is the request message's type.
	Input protoreflect.MessageType
	// Handle runs one attempt with the decoded request.
	Handle func(ctx context.Context, task *Task, request proto.Message) (proto.Message, error)
}

// NewMethod makes a Method of a typed handler: generated code calls it.
func NewMethod[I, O proto.Message](name string, handler func(context.Context, *Task, I) (O, error)) Method {
	var input I
	return Method{
		Name:  name,
		Input: input.ProtoReflect().Type(),
		Handle: func(ctx context.Context, task *Task, request proto.Message) (proto.Message, error) {
			typed, ok := request.(I)
			if !ok {
				return nil, fmt.Errorf("%s: request is %T", name, request)
			}
			output, err := handler(ctx, task, typed)
			if err != nil {
				return nil, err
			}
			return output, nil
		},
	}
}

// Task is what a handler knows of the attempt it runs, and how it reports on it.
// Its context (the handler's ctx) ends at the task's deadline, when the task is
// cancelled, and when the worker's shutdown interrupts it.
type Task struct {
	// ID is the task's id, `<worker type>.<26 characters>`.
	ID string
	// WorkerType and Method name what runs.
	WorkerType string
	Method     string
	// Attempt is this attempt's number, from 1; MaxAttempts those the task may make.
	Attempt     int
	MaxAttempts int
	// Deadline is when the attempt's time is up (its ctx ends then).
	Deadline time.Time
	// Metadata is the task's, as submitted.
	Metadata map[string]string
	// Endpoint is this worker's id when the task is a broadcast's copy, else "".
	Endpoint string
	// WorkerID is the worker instance running it.
	WorkerID string

	progress  func(fraction float64, message string)
	heartbeat func()
}

// Progress records how far the task is (fraction in [0, 1]) in its status
// record, best effort and at most every 250 ms. A broadcast copy keeps none.
func (t *Task) Progress(fraction float64, message string) error {
	if !(fraction >= 0 && fraction <= 1) {
		return fmt.Errorf("progress fraction must be in [0, 1], got %v", fraction)
	}
	if t.progress != nil {
		t.progress(fraction, message)
	}
	return nil
}

// Heartbeat tells JetStream the attempt is alive now, besides the worker's own
// heartbeat every third of ack_wait: for a handler that blocks its goroutine's
// peers for long.
func (t *Task) Heartbeat() {
	if t.heartbeat != nil {
		t.heartbeat()
	}
}
