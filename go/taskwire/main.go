package taskwire

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// Main runs a worker process of services as every Taskwire worker process
// runs: configured by the environment, draining on SIGTERM or SIGINT, and
// exiting 0 once drained (1 when it cannot start). It does not return.
//
//   - TASKWIRE_NATS (a URL) or TASKWIRE_NATS_SETTINGS (JSON, see ConnectionSettings);
//   - TASKWIRE_WORKER_ID (required);
//   - TASKWIRE_CONCURRENCY: every type's handler slots, over the proto's;
//   - TASKWIRE_SHUTDOWN_GRACE_MS: how long running handlers may finish (default 30000);
//   - TASKWIRE_RETENTION (JSON): its maxResultBytes, the largest result kept where
//     a type's own retention sets none.
//
// TASKWIRE_ACK_WAIT_MS and TASKWIRE_REPLICAS are not read: a Go worker
// provisions nothing, and the consumers' ack_wait in place rules. A NATS that does not answer yet is
// waited for. Started by the supervisor (NODE_CHANNEL_FD set), it says
// "ready" on that channel once serving, and drains when the channel closes.
func Main(services ...Service) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("worker", os.Getenv("TASKWIRE_WORKER_ID"))
	if err := runMain(logger, services); err != nil {
		logger.Error("could not start: " + err.Error())
		os.Exit(1)
	}
	os.Exit(0)
}

func runMain(logger *slog.Logger, services []Service) error {
	id := os.Getenv("TASKWIRE_WORKER_ID")
	if id == "" {
		return errors.New("TASKWIRE_WORKER_ID is not set")
	}
	concurrency, err := optionalInt("TASKWIRE_CONCURRENCY")
	if err != nil {
		return err
	}
	graceMs, err := optionalInt("TASKWIRE_SHUTDOWN_GRACE_MS")
	if err != nil {
		return err
	}
	settings, err := settingsFromEnvironment()
	if err != nil {
		return err
	}
	maxResultBytes, err := deploymentMaxResultBytes()
	if err != nil {
		return err
	}
	grace := time.Duration(graceMs) * time.Millisecond
	if grace == 0 {
		grace = 30 * time.Second
	}
	// Every SIGTERM or SIGINT drains, a second one too (the supervisor's after a
	// terminal's): none kills the drain.
	ctx, drain := context.WithCancel(context.Background())
	defer drain()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		drain()
	}()
	channel := openSupervisorChannel(logger, func() {
		drain()
		// Nobody will kill it after the grace period, as the supervisor does: it ends itself then.
		time.AfterFunc(grace+time.Second, func() {
			logger.Error("the supervisor is gone and draining took too long: exiting")
			os.Exit(1)
		})
	})
	nc, err := connect(ctx, logger, settings)
	if err != nil || nc == nil {
		return err
	}
	defer func() {
		// The last acks and records go out before the process ends.
		_ = nc.FlushTimeout(requestTimeout)
		nc.Close()
	}()
	opts := Options{
		Conn:           nc,
		WorkerID:       id,
		Concurrency:    concurrency,
		ShutdownGrace:  grace,
		MaxResultBytes: maxResultBytes,
		Logger:         logger,
		Ready:          channel.ready,
	}
	if settings.JetStream != nil {
		opts.JetStreamDomain, opts.JetStreamAPIPrefix = settings.JetStream.Domain, settings.JetStream.APIPrefix
	}
	worker, err := NewWorker(opts, services...)
	if err != nil {
		return err
	}
	return worker.Run(ctx)
}

func optionalInt(name string) (int, error) {
	value := os.Getenv(name)
	if value == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s must be a whole number, got %q", name, value)
	}
	return n, nil
}

// deploymentMaxResultBytes reads TASKWIRE_RETENTION's maxResultBytes (0 when unset).
func deploymentMaxResultBytes() (int, error) {
	raw := os.Getenv("TASKWIRE_RETENTION")
	if raw == "" {
		return 0, nil
	}
	var retention struct {
		MaxResultBytes *int `json:"maxResultBytes"`
	}
	if err := json.Unmarshal([]byte(raw), &retention); err != nil {
		return 0, fmt.Errorf("TASKWIRE_RETENTION must be a JSON object: %w", err)
	}
	if retention.MaxResultBytes == nil {
		return 0, nil
	}
	if *retention.MaxResultBytes < 1 {
		return 0, fmt.Errorf("TASKWIRE_RETENTION's maxResultBytes must be a positive integer, got %d", *retention.MaxResultBytes)
	}
	return *retention.MaxResultBytes, nil
}

// settingsFromEnvironment reads TASKWIRE_NATS_SETTINGS, else TASKWIRE_NATS.
func settingsFromEnvironment() (*ConnectionSettings, error) {
	if raw := os.Getenv("TASKWIRE_NATS_SETTINGS"); raw != "" {
		return ParseConnectionSettings([]byte(raw))
	}
	url := os.Getenv("TASKWIRE_NATS")
	if url == "" {
		return nil, errors.New("TASKWIRE_NATS or TASKWIRE_NATS_SETTINGS must be set")
	}
	return &ConnectionSettings{Servers: stringList{url}}, nil
}

// connect connects to NATS, trying every second until it answers or ctx ends
// (then nil): saying so on the first failure and about once a minute.
func connect(ctx context.Context, logger *slog.Logger, settings *ConnectionSettings) (*nats.Conn, error) {
	opts, err := settings.natsOptions()
	if err != nil {
		return nil, err
	}
	urls := settings.serverURLs()
	var said time.Time
	for {
		nc, err := nats.Connect(urls, opts...)
		if err == nil {
			return nc, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, fmt.Errorf("connecting to NATS at %s: %w", redactURLs(urls), err)
		}
		if time.Since(said) >= time.Minute {
			said = time.Now()
			logger.Warn("waiting for NATS", "servers", redactURLs(urls), "reason", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(time.Second):
		}
	}
}

// supervisorChannel is the IPC channel of a worker process the supervisor
// started (NODE_CHANNEL_FD): JSON lines.
type supervisorChannel struct {
	file *os.File
	once sync.Once
}

// openSupervisorChannel opens the supervisor's channel if there is one: lines
// read from it are ignored, and its end (the supervisor is gone) drains the
// worker as SIGTERM would.
func openSupervisorChannel(logger *slog.Logger, drain func()) *supervisorChannel {
	fd, err := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
	if err != nil {
		return &supervisorChannel{}
	}
	file := os.NewFile(uintptr(fd), "supervisor channel")
	if file == nil {
		return &supervisorChannel{}
	}
	go func() {
		reader := bufio.NewReader(file)
		for {
			if _, err := reader.ReadBytes('\n'); err != nil {
				logger.Warn("the supervisor is gone: draining")
				drain()
				return
			}
		}
	}()
	return &supervisorChannel{file: file}
}

// ready tells the supervisor the worker serves its types, once.
func (c *supervisorChannel) ready(workerTypes []string) {
	if c.file == nil {
		return
	}
	c.once.Do(func() {
		id := os.Getenv("TASKWIRE_WORKER_ID")
		line, _ := json.Marshal(map[string]any{"type": "ready", "workerId": id, "workerTypes": workerTypes})
		_, _ = c.file.Write(append(line, '\n'))
	})
}
