// Command worker runs Tollgate tasks in its own process, over
// WorkerService.Work with the generated Go client (gen/go, grpc-go). It says
// which kinds of task it runs and how many at once, is sent each task the
// moment its user's rate policy lets it start, and answers each one.
//
// For the example, a task appends the line
//
//	<user_id> <task_id> <kind> <attempt> <unix ms at start>
//
// to the -log file (when given), then sleeps -sleep, stopping early when the
// server cancels it.
//
//	go run . -addr localhost:50051 -kind resize,email -concurrency 4 -log tasks.log -sleep 2s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	tollgatev1 "github.com/tollgate-dev/tollgate/gen/go/tollgate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var (
	addr        = flag.String("addr", envOr("TOLLGATE_ADDR", "localhost:50051"), "server host:port (env TOLLGATE_ADDR)")
	key         = flag.String("key", os.Getenv("TOLLGATE_API_KEY"), "an API key with the worker role, when auth is on (env TOLLGATE_API_KEY)")
	kinds       = flag.String("kind", "", "the kinds of task to run, comma-separated (required)")
	concurrency = flag.Uint("concurrency", 1, "tasks at once (1 to 1000)")
	name        = flag.String("name", "", "a name for people, in the server's metrics and dashboard")
	logPath     = flag.String("log", "", "append a line per task to this file")
	sleep       = flag.Duration("sleep", 0, "how long each task takes")
)

func main() {
	flag.Parse()
	hello := &tollgatev1.WorkerHello{Concurrency: uint32(*concurrency), Name: *name}
	for _, kind := range strings.Split(*kinds, ",") {
		if kind = strings.TrimSpace(kind); kind != "" {
			hello.Kinds = append(hello.Kinds, kind)
		}
	}
	if len(hello.Kinds) == 0 {
		fmt.Fprintln(os.Stderr, "worker: -kind is required")
		flag.Usage()
		os.Exit(2)
	}
	if *logPath != "" {
		file, err := os.OpenFile(*logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer file.Close()
		taskLog = file
	}

	// SIGINT or SIGTERM ends the stream: tasks not answered yet go back to their queues and run again.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Plaintext HTTP/2; for TLS use credentials.NewClientTLSFromFile instead.
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := tollgatev1.NewWorkerServiceClient(conn)
	if *key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*key)
	}

	// A lost stream's unanswered tasks go back to their queues, so a new stream simply starts over.
	for {
		err := work(ctx, client, hello)
		if ctx.Err() != nil {
			return // stopped by a signal
		}
		switch status.Code(err) {
		case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
			// Refused: trying again would only be refused again.
			fmt.Fprintf(os.Stderr, "worker: %s: %s\n", status.Code(err), status.Convert(err).Message())
			os.Exit(1)
		}
		log.Printf("stream lost (%v); reconnecting in 1s", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

var (
	taskLog   *os.File
	taskLogMu sync.Mutex
)

// runTask is this example's work: one line in -log, then -sleep, cut short
// when ctx is cancelled (its cause is the server's reason). A returned error
// fails the attempt; the server retries it while attempts remain.
func runTask(ctx context.Context, task *tollgatev1.TaskAssignment) error {
	if taskLog != nil {
		line := fmt.Sprintf("%s %s %s %d %d\n",
			task.GetUserId(), task.GetTaskId(), task.GetKind(), task.GetAttempt(), time.Now().UnixMilli())
		taskLogMu.Lock()
		_, err := taskLog.WriteString(line)
		taskLogMu.Unlock()
		if err != nil {
			return err
		}
	}
	select {
	case <-time.After(*sleep):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// work is one Work stream: the hello, then each task run in a goroutine of
// its own (the server never sends more than the hello's concurrency
// unanswered) and answered with a result, heartbeats as the welcome asks,
// and cancels. It returns when the stream ends; returning cancels the tasks
// still running, whose results then go nowhere.
func work(ctx context.Context, client tollgatev1.WorkerServiceClient, hello *tollgatev1.WorkerHello) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Work(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&tollgatev1.WorkRequest{Message: &tollgatev1.WorkRequest_Hello{Hello: hello}}); err != nil {
		return err
	}

	// A grpc-go stream takes one Send at a time: results and heartbeats go through one goroutine.
	out := make(chan *tollgatev1.WorkRequest)
	send := func(request *tollgatev1.WorkRequest) {
		select {
		case out <- request:
		case <-ctx.Done():
		}
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case request := <-out:
				if stream.Send(request) != nil {
					return // the stream is over; Recv below says why
				}
			}
		}
	}()

	var mu sync.Mutex
	running := map[string]context.CancelCauseFunc{} // by task id and attempt
	for {
		response, err := stream.Recv()
		if err != nil {
			return err
		}
		switch message := response.GetMessage().(type) {
		case *tollgatev1.WorkResponse_Welcome:
			log.Printf("connected as %s", message.Welcome.GetWorkerId())
			go heartbeat(ctx, send, time.Duration(message.Welcome.GetHeartbeatIntervalMs())*time.Millisecond)
		case *tollgatev1.WorkResponse_Task:
			task := message.Task
			id := fmt.Sprintf("%s#%d", task.GetTaskId(), task.GetAttempt())
			taskCtx, stopTask := context.WithCancelCause(ctx)
			mu.Lock()
			running[id] = stopTask
			mu.Unlock()
			go func() {
				err := runTask(taskCtx, task)
				mu.Lock()
				delete(running, id)
				mu.Unlock()
				stopTask(nil)
				send(result(task, err))
			}()
		case *tollgatev1.WorkResponse_Cancel:
			// A CancelTask or a timeout: stop the attempt; it answers failed with the reason.
			mu.Lock()
			if stopTask, ok := running[fmt.Sprintf("%s#%d", message.Cancel.GetTaskId(), message.Cancel.GetAttempt())]; ok {
				stopTask(errors.New(message.Cancel.GetReason()))
			}
			mu.Unlock()
		}
	}
}

// heartbeat keeps the stream alive: twice per the interval the welcome names, so none is late.
func heartbeat(ctx context.Context, send func(*tollgatev1.WorkRequest), interval time.Duration) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	ticker := time.NewTicker(interval / 2)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			send(&tollgatev1.WorkRequest{Message: &tollgatev1.WorkRequest_Heartbeat{Heartbeat: &tollgatev1.WorkerHeartbeat{}}})
		}
	}
}

// result answers one attempt: completed, or failed with the error's text.
func result(task *tollgatev1.TaskAssignment, err error) *tollgatev1.WorkRequest {
	answer := &tollgatev1.TaskResult{TaskId: task.GetTaskId(), Attempt: task.GetAttempt()}
	if err == nil {
		answer.Outcome = &tollgatev1.TaskResult_Completed{Completed: &tollgatev1.TaskCompleted{}}
	} else {
		answer.Outcome = &tollgatev1.TaskResult_Failed{Failed: &tollgatev1.TaskFailed{Error: err.Error()}}
	}
	return &tollgatev1.WorkRequest{Message: &tollgatev1.WorkRequest_Result{Result: answer}}
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
