package indexer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

func TestIsolationRefusedIsOnlyAServerExceptionAboutTheData(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"exception for the data", &ch.Exception{Code: proto.ErrFunctionThrowIfValueIsNonZero}, true},
		{"wrapped exception", fmt.Errorf("insert samples: %w", &ch.Exception{Code: proto.ErrTypeMismatch}), true},
		{"too many parts", fmt.Errorf("insert: %w", &ch.Exception{Code: proto.ErrTooManyParts}), false},
		{"memory limit", &ch.Exception{Code: proto.ErrMemoryLimitExceeded}, false},
		{"read-only table", &ch.Exception{Code: proto.ErrTableIsReadOnly}, false},
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{"deadline", fmt.Errorf("connection closed at the deadline: %w", context.DeadlineExceeded), false},
	} {
		if got := refused(tc.err); got != tc.want {
			t.Errorf("%s: refused = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDeadlineBatchAndSettlingFitInTheAckWait(t *testing.T) {
	for _, tc := range []struct {
		configured, ackWait, batch, settle time.Duration
	}{
		{0, time.Minute, 45 * time.Second, 10 * time.Second},
		{10 * time.Second, time.Minute, 10 * time.Second, 10 * time.Second},
		{5 * time.Minute, time.Minute, 5 * time.Minute, 10 * time.Second}, // kept alive by in-progress acks
		{0, 2 * time.Second, 1500 * time.Millisecond, 500 * time.Millisecond},
	} {
		b, s := batchTimeouts(tc.configured, tc.ackWait)
		if b != tc.batch || s != tc.settle || (tc.configured == 0 && b+s > tc.ackWait) {
			t.Errorf("batchTimeouts(%s, %s) = %s, %s; want %s, %s within the ack wait", tc.configured, tc.ackWait, b, s, tc.batch, tc.settle)
		}
	}
}
