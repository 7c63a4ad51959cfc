package taskwire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// Code is a task error's code: the numbers of the Connect and gRPC status codes
// (ErrorCode in task.proto).
type Code = taskwirev1.ErrorCode

// The codes a handler's errors carry most often.
const (
	CodeCanceled           = taskwirev1.ErrorCode_ERROR_CODE_CANCELED
	CodeUnknown            = taskwirev1.ErrorCode_ERROR_CODE_UNKNOWN
	CodeInvalidArgument    = taskwirev1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	CodeDeadlineExceeded   = taskwirev1.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED
	CodeNotFound           = taskwirev1.ErrorCode_ERROR_CODE_NOT_FOUND
	CodeAlreadyExists      = taskwirev1.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	CodePermissionDenied   = taskwirev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	CodeResourceExhausted  = taskwirev1.ErrorCode_ERROR_CODE_RESOURCE_EXHAUSTED
	CodeFailedPrecondition = taskwirev1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
	CodeAborted            = taskwirev1.ErrorCode_ERROR_CODE_ABORTED
	CodeOutOfRange         = taskwirev1.ErrorCode_ERROR_CODE_OUT_OF_RANGE
	CodeUnimplemented      = taskwirev1.ErrorCode_ERROR_CODE_UNIMPLEMENTED
	CodeInternal           = taskwirev1.ErrorCode_ERROR_CODE_INTERNAL
	CodeUnavailable        = taskwirev1.ErrorCode_ERROR_CODE_UNAVAILABLE
	CodeDataLoss           = taskwirev1.ErrorCode_ERROR_CODE_DATA_LOSS
	CodeUnauthenticated    = taskwirev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED
)

// Error is a task's failure as its status record keeps it: a code, a message,
// and whether another attempt may succeed.
type Error struct {
	Code      Code
	Message   string
	Retryable bool
	cause     error
}

// NewError makes an error with a code; it is retryable unless its code describes
// the input or the caller (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
// PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED, OUT_OF_RANGE,
// FAILED_PRECONDITION, CANCELED), as in the TypeScript runtime.
func NewError(code Code, message string) *Error {
	return &Error{Code: code, Message: message, Retryable: retryableCode(code)}
}

// Errorf is NewError with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return NewError(code, fmt.Sprintf(format, args...))
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.cause }

// NonRetryable marks err as final: the task fails at once, whatever its retry
// policy says. An *Error keeps its code; any other error is FAILED_PRECONDITION.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	var known *Error
	if errors.As(err, &known) {
		return &Error{Code: known.Code, Message: known.Message, cause: err}
	}
	return &Error{Code: CodeFailedPrecondition, Message: err.Error(), cause: err}
}

// errorOf is what a handler's error records: an *Error as it is, a context's
// deadline as DEADLINE_EXCEEDED, anything else as a retryable UNKNOWN.
func errorOf(err error) *Error {
	var known *Error
	if errors.As(err, &known) {
		return known
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeDeadlineExceeded, Message: err.Error(), Retryable: true, cause: err}
	}
	message := err.Error()
	if message == "" {
		message = fmt.Sprintf("%T", err)
	}
	return &Error{Code: CodeUnknown, Message: message, Retryable: true, cause: err}
}

// message is the error as a status record keeps it.
func (e *Error) message(attempt int, now time.Time) *taskwirev1.TaskError {
	return &taskwirev1.TaskError{
		Code:       e.Code,
		Message:    e.Message,
		Retryable:  e.Retryable,
		Attempt:    uint32(attempt),
		OccurredAt: timestamppb.New(now),
	}
}

func retryableCode(code Code) bool {
	switch code {
	case CodeInvalidArgument, CodeNotFound, CodeAlreadyExists, CodePermissionDenied, CodeUnauthenticated,
		CodeUnimplemented, CodeOutOfRange, CodeFailedPrecondition, CodeCanceled:
		return false
	}
	return true
}
