package taskwire

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// throughputStep is the span of one ThroughputPoint.
const throughputStep = 10 * time.Second

// throughput counts the attempts a worker finishes, per worker type, and
// publishes each type's counts (core NATS) when their 10-second step ends and
// when the worker stops. A step with nothing finished publishes nothing.
type throughput struct {
	nc    *nats.Conn
	mu    sync.Mutex
	steps map[string]*taskwirev1.ThroughputPoint
	stop  chan struct{}
	done  chan struct{}
}

func startThroughput(nc *nats.Conn) *throughput {
	t := &throughput{nc: nc, steps: map[string]*taskwirev1.ThroughputPoint{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for {
			untilBoundary := throughputStep - time.Duration(time.Now().UnixNano())%throughputStep
			select {
			case <-t.stop:
				return
			case <-time.After(untilBoundary):
				t.flush()
			}
		}
	}()
	return t
}

// count adds a finished attempt; given back, overtaken or superseded ones count nowhere.
func (t *throughput) count(workerType string, how outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	point := t.steps[workerType]
	if point == nil {
		start := time.Now().Truncate(throughputStep)
		point = &taskwirev1.ThroughputPoint{Start: timestamppb.New(start)}
	}
	switch how {
	case outcomeSucceeded:
		point.Succeeded++
	case outcomeFailed:
		point.Failed++
	case outcomeRetrying:
		point.Retried++
	case outcomeCancelled, outcomeExpired:
		point.Cancelled++
	default:
		return
	}
	t.steps[workerType] = point
}

// close publishes what was counted and stops.
func (t *throughput) close() {
	close(t.stop)
	<-t.done
	t.flush()
}

func (t *throughput) flush() {
	t.mu.Lock()
	steps := t.steps
	t.steps = map[string]*taskwirev1.ThroughputPoint{}
	t.mu.Unlock()
	for workerType, point := range steps {
		if bytes, err := proto.Marshal(point); err == nil {
			_ = t.nc.Publish(throughputSubject(workerType), bytes)
		}
	}
}
