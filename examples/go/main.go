// Command example calls Tollgate with the generated Go client (gen/go, grpc-go):
// it submits tasks for a user, reads one back with GetTask, and watches the
// user's queue over WatchQueue until it has drained.
//
//	go run . -addr localhost:50051 -user 123 -count 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	tollgatev1 "github.com/tollgate-dev/tollgate/gen/go/tollgate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func main() {
	addr := flag.String("addr", envOr("TOLLGATE_ADDR", "localhost:50051"), "server host:port (env TOLLGATE_ADDR)")
	user := flag.String("user", "123", "the user the tasks run for")
	count := flag.Int("count", 3, "how many tasks to submit")
	flag.Parse()
	if err := run(*addr, *user, *count); err != nil {
		// A failed call is a gRPC status: print its code and message.
		fmt.Fprintf(os.Stderr, "example: %s: %s\n", status.Code(err), status.Convert(err).Message())
		os.Exit(1)
	}
}

func run(addr, user string, count int) error {
	// Plaintext HTTP/2; for TLS use credentials.NewClientTLSFromFile instead.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := tollgatev1.NewTaskServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var first string
	for i := range count {
		answer, err := client.Submit(ctx, &tollgatev1.SubmitRequest{
			UserId:  user,
			Payload: fmt.Appendf(nil, "task %d", i+1),
		})
		if err != nil {
			return err
		}
		if first == "" {
			first = answer.GetTaskId()
		}
		// QUEUED is a success: the task starts the moment the policy allows.
		fmt.Printf("submitted %s: %s, queue position %d, starts %s\n", answer.GetTaskId(), answer.GetDisposition(),
			answer.GetQueuePosition(), answer.GetEstimatedStart().AsTime().Format(time.RFC3339Nano))
	}

	task, err := client.GetTask(ctx, &tollgatev1.GetTaskRequest{TaskId: first})
	if err != nil {
		return err
	}
	fmt.Printf("task %s: %s, %d attempt(s)\n", first, task.GetTask().GetState(), task.GetTask().GetAttempts())

	// Without Follow the stream ends after the message that says drained.
	stream, err := client.WatchQueue(ctx, &tollgatev1.WatchQueueRequest{UserId: user})
	if err != nil {
		return err
	}
	for {
		progress, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Printf("queue %s: %d queued, %d running, %d completed, drained %t\n", user,
			progress.GetQueued(), progress.GetRunning(), progress.GetCompleted(), progress.GetDrained())
	}
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
