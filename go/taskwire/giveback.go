package taskwire

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// giveBack returns a delivery to the stream because this worker is shutting
// down, without spending one of the task's attempts (step 8): the record says
// how many it spent and counts the delivery as returned, then the message is
// nak'ed. A task whose record is terminal is acked instead, and one a later
// delivery has is left alone. A record that cannot be written is nak'ed all
// the same, as a crash would. Broadcast copies are only nak'ed.
func (t *served) giveBack(ctx context.Context, msg jetstream.Msg) outcome {
	if how, settled := t.returnRecord(ctx, msg); settled {
		return how
	}
	_ = msg.Nak()
	return outcomeRequeued
}

// returnRecord writes the given-back record; settled when the message was acked or is left alone.
func (t *served) returnRecord(ctx context.Context, msg jetstream.Msg) (outcome, bool) {
	item := &taskwirev1.WorkItem{}
	meta, err := msg.Metadata()
	if err != nil || proto.Unmarshal(msg.Data(), item) != nil || item.GetEndpoint() != "" {
		return "", false
	}
	deliveries := meta.NumDelivered
	mine := delivery{meta.Sequence.Stream, uint32(deliveries)}
	// A first delivery has no record yet, unless a cancel wrote one.
	var current record
	if deliveries > 1 {
		if current, err = t.w.store.read(ctx, item.GetTaskId()); err != nil {
			return "", false
		}
	}
	if current.status == nil {
		current = record{status: queuedStatus(item)}
	}
	// Two tries: a conflict tells the revision (or the terminal state) to write over.
	for tries := 0; current.status != nil && tries < 2; tries++ {
		if isTerminal(current.status.GetState()) {
			_ = msg.Ack()
			return outcomeSuperseded, true
		}
		if overtaken(current.status, mine) {
			return outcomeOvertaken, true
		}
		var found *taskwirev1.TaskStatus
		if current.revision != 0 {
			found = current.status
		}
		markReturned(current.status, spentAttempts(found, item, deliveries))
		current.status.DeliverySequence, current.status.DeliveryCount = mine.sequence, mine.count
		stored, err := t.w.store.write(ctx, current.status, current.revision)
		if err != nil || stored != nil {
			break
		}
		if current, err = t.w.store.read(ctx, item.GetTaskId()); err != nil {
			break
		}
	}
	return "", false
}
