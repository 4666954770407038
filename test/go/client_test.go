// End-to-end test of the generated Go client (gen/go) against a running
// Tollgate. test/go-client.test.ts starts `tollgate serve` on a private Redis
// (default policy: 1/1s,20/1m) and runs `go test ./...` here with TOLLGATE_ADDR
// set; without TOLLGATE_ADDR every test skips.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	tollgatev1 "github.com/tollgate-dev/tollgate/gen/go/tollgate/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func connect(t *testing.T) (*grpc.ClientConn, context.Context) {
	t.Helper()
	addr := os.Getenv("TOLLGATE_ADDR")
	if addr == "" {
		t.Skip("TOLLGATE_ADDR is not set: npm test (test/go-client.test.ts) starts tollgate serve and sets it")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%q): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return conn, ctx
}

// A user no other test (or earlier run on the same Redis) has used.
func freshUser(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

func TestSubmitGetTaskAndWatchQueueUntilDrained(t *testing.T) {
	conn, ctx := connect(t)
	client := tollgatev1.NewTaskServiceClient(conn)
	user := freshUser("go-e2e")

	var ids []string
	var lastStart time.Time
	for i := range 3 {
		answer, err := client.Submit(ctx, &tollgatev1.SubmitRequest{UserId: user, Payload: fmt.Appendf(nil, "go %d", i)})
		if err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
		ids = append(ids, answer.GetTaskId())
		// 1/1s: the first starts now; the others queue behind it, a second apart.
		want, wantPosition := tollgatev1.Disposition_DISPOSITION_QUEUED, uint32(i)
		if i == 0 {
			want = tollgatev1.Disposition_DISPOSITION_STARTED
		}
		if answer.GetDisposition() != want || answer.GetQueuePosition() != wantPosition {
			t.Fatalf("Submit %d: %s at position %d, want %s at %d", i, answer.GetDisposition(), answer.GetQueuePosition(), want, wantPosition)
		}
		if len(answer.GetWindows()) != 2 {
			t.Fatalf("Submit %d: %d windows, want the policy's 2", i, len(answer.GetWindows()))
		}
		start := answer.GetEstimatedStart().AsTime()
		if i > 0 && !start.After(lastStart) {
			t.Fatalf("Submit %d: estimated start %s is not after the previous task's %s", i, start, lastStart)
		}
		lastStart = start
	}

	queued, err := client.GetTask(ctx, &tollgatev1.GetTaskRequest{TaskId: ids[2]})
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if task := queued.GetTask(); task.GetTaskId() != ids[2] || task.GetUserId() != user || task.GetState() != tollgatev1.TaskState_TASK_STATE_QUEUED {
		t.Fatalf("GetTask of the last task: %v, want %s QUEUED for %s", task, ids[2], user)
	}

	stream, err := client.WatchQueue(ctx, &tollgatev1.WatchQueueRequest{UserId: user})
	if err != nil {
		t.Fatalf("WatchQueue: %v", err)
	}
	var messages []*tollgatev1.WatchQueueResponse
	for {
		message, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("WatchQueue after %d messages: %v", len(messages), err)
		}
		messages = append(messages, message)
	}
	if len(messages) < 2 {
		t.Fatalf("WatchQueue sent %d message(s), want progress and then drained: %v", len(messages), messages)
	}
	for i, message := range messages {
		last := i == len(messages)-1
		if message.GetDrained() != last {
			t.Fatalf("message %d of %d says drained=%t: %v", i+1, len(messages), message.GetDrained(), message)
		}
		if i > 0 && message.GetQueued() > messages[i-1].GetQueued() {
			t.Fatalf("queued rose from %d to %d", messages[i-1].GetQueued(), message.GetQueued())
		}
	}
	if end := messages[len(messages)-1]; end.GetQueued() != 0 || end.GetRunning() != 0 || end.GetUserId() != user {
		t.Fatalf("the drained message: %v", end)
	}
	if messages[0].GetQueued() == 0 {
		t.Fatalf("the first message shows nothing queued: %v", messages[0])
	}

	for _, id := range ids {
		answer, err := client.GetTask(ctx, &tollgatev1.GetTaskRequest{TaskId: id})
		if err != nil {
			t.Fatalf("GetTask(%s): %v", id, err)
		}
		task := answer.GetTask()
		if task.GetState() != tollgatev1.TaskState_TASK_STATE_SUCCEEDED || task.GetAttempts() != 1 ||
			task.GetStartedAt() == nil || task.GetFinishedAt() == nil {
			t.Fatalf("after the drain, task %s: %v, want SUCCEEDED after 1 attempt with timestamps", id, task)
		}
	}
}

func TestErrorsAreStatusCodes(t *testing.T) {
	conn, ctx := connect(t)
	client := tollgatev1.NewTaskServiceClient(conn)

	_, err := client.Submit(ctx, &tollgatev1.SubmitRequest{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "user_id") {
		t.Fatalf("Submit without user_id: %v, want InvalidArgument naming user_id", err)
	}

	_, err = client.GetTask(ctx, &tollgatev1.GetTaskRequest{TaskId: "0.AAAAAAAAAAAAAAAAAAAAAA"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetTask of an unknown id: %v, want NotFound", err)
	}

	// REJECT over the limit: RESOURCE_EXHAUSTED with RetryInfo and a retry-after-ms trailer.
	user := freshUser("go-reject")
	reject := &tollgatev1.SubmitRequest{UserId: user, OverLimit: tollgatev1.OverLimit_OVER_LIMIT_REJECT}
	if _, err := client.Submit(ctx, reject); err != nil {
		t.Fatalf("the first REJECT-mode Submit is within the limit: %v", err)
	}
	var trailer metadata.MD
	_, err = client.Submit(ctx, reject, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the second REJECT-mode Submit within a second: %v, want ResourceExhausted", err)
	}
	var delay time.Duration
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.RetryInfo); ok {
			delay = info.GetRetryDelay().AsDuration()
		}
	}
	if delay <= 0 || delay > time.Second {
		t.Fatalf("RetryInfo's delay is %s, want (0, 1s] under 1/1s; details: %v", delay, status.Convert(err).Details())
	}
	if got := trailer.Get("retry-after-ms"); len(got) != 1 {
		t.Fatalf("retry-after-ms trailer: %v", got)
	}
}

func TestHealthServing(t *testing.T) {
	conn, ctx := connect(t)
	health := healthpb.NewHealthClient(conn)
	for _, service := range []string{"", "tollgate.v1.TaskService"} {
		answer, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || answer.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Health/Check(%q): %v %v, want SERVING", service, answer, err)
		}
	}
}
