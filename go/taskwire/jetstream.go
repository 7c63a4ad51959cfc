package taskwire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// JetStream calls made as plain requests, so that every header (the
// conditional ones, Nats-TTL, Nats-Incr) and every answer (a counter's value)
// is the protocol's own.

// requestTimeout bounds one JetStream request.
const requestTimeout = 5 * time.Second

// pubAck is a stream's answer to a publish.
type pubAck struct {
	Stream    string    `json:"stream"`
	Seq       uint64    `json:"seq"`
	Duplicate bool      `json:"duplicate"`
	Value     string    `json:"val"`
	Error     *apiError `json:"error"`
}

// apiError is a JetStream API error.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (%d, %d)", e.Description, e.Code, e.ErrCode)
}

// errWrongLastSequence is a conditional publish refused: someone else wrote first.
func isWrongLastSequence(err error) bool {
	var api *apiError
	return errors.As(err, &api) &&
		(api.ErrCode == 10071 || api.ErrCode == 10164 || strings.Contains(strings.ToLower(api.Description), "wrong last sequence"))
}

// isQueuedAlready: a publish refused because its subject holds a message (one per subject).
func isQueuedAlready(err error) bool {
	var api *apiError
	return errors.As(err, &api) && strings.Contains(strings.ToLower(api.Description), "maximum messages per subject exceeded")
}

// isTooLarge: a publish over the server's max_payload or the stream's max_msg_size.
func isTooLarge(err error) bool {
	message := strings.ToLower(err.Error())
	return strings.Contains(message, "maximum payload exceeded") || strings.Contains(message, "max_payload") ||
		strings.Contains(message, "message size exceeds maximum")
}

// js is what the worker sends JetStream.
type js struct {
	nc *nats.Conn
	// api is the JetStream API prefix: "$JS.API", or a domain's or an import's.
	api string
}

// publish stores a message in its stream and waits for the PubAck.
func (j *js) publish(ctx context.Context, subject string, data []byte, header nats.Header) (*pubAck, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	reply, err := j.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data, Header: header})
	if err != nil {
		return nil, fmt.Errorf("publishing to %s: %w", subject, err)
	}
	var ack pubAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return nil, fmt.Errorf("publishing to %s: no PubAck (%q)", subject, reply.Data)
	}
	if ack.Error != nil {
		return nil, ack.Error
	}
	return &ack, nil
}

// stored is a message read by direct get.
type stored struct {
	seq    uint64
	data   []byte
	header nats.Header
}

// lastOn reads the last message on a subject of a stream (direct get); nil when there is none.
func (j *js) lastOn(ctx context.Context, stream, subject string) (*stored, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	reply, err := j.nc.RequestWithContext(ctx, j.api+".DIRECT.GET."+stream+"."+subject, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s of %s: %w", subject, stream, err)
	}
	switch status := reply.Header.Get("Status"); status {
	case "":
	case "404":
		return nil, nil
	default:
		return nil, fmt.Errorf("reading %s of %s: %s %s", subject, stream, status, reply.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(reply.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("reading %s of %s: no sequence", subject, stream)
	}
	return &stored{seq: seq, data: reply.Data, header: reply.Header}, nil
}

// deleteMessage removes a message by its sequence ($JS.API.STREAM.MSG.DELETE).
func (j *js) deleteMessage(ctx context.Context, stream string, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"seq": seq, "no_erase": true})
	reply, err := j.nc.RequestWithContext(ctx, j.api+".STREAM.MSG.DELETE."+stream, body)
	if err != nil {
		return err
	}
	var answer struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &answer); err != nil {
		return fmt.Errorf("deleting message %d of %s: %q", seq, stream, reply.Data)
	}
	if answer.Error != nil {
		return answer.Error
	}
	return nil
}

// header makes a nats.Header of name/value pairs.
func header(pairs ...string) nats.Header {
	h := nats.Header{}
	for i := 0; i+1 < len(pairs); i += 2 {
		h.Set(pairs[i], pairs[i+1])
	}
	return h
}
