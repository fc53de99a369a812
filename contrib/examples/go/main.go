// SPDX-License-Identifier: MIT
// A small HTTP server for corral, with Debian's go-systemd (golang-github-coreos-go-systemd-dev): it takes
// its listening sockets with activation.Listeners(), says READY=1 with daemon.SdNotify() once it serves, and
// on SIGTERM stops accepting and finishes the requests in flight (http.Server.Shutdown).
// Build (offline, with Debian's packaged sources):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o corral-example-go contrib/examples/go/main.go
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/activation"
	"github.com/coreos/go-systemd/daemon"
)

func main() {
	slot, generation := os.Getenv("WORKER_INDEX"), os.Getenv("WORKER_GENERATION")
	listeners, err := activation.Listeners()
	if err != nil || len(listeners) == 0 {
		log.Fatalf("no listening socket from LISTEN_FDS (run under corral or systemd): %v", err)
	}
	// Stands in for a real app's start-up work (connections, caches), so a test can tell readiness after
	// it from readiness at exec.
	if s, err := strconv.ParseFloat(os.Getenv("EXAMPLE_LOAD_SECONDS"), 64); err == nil {
		time.Sleep(time.Duration(s * float64(time.Second)))
	}

	pid := strconv.Itoa(os.Getpid())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Worker-Slot", slot)
			w.Header().Set("X-Worker-Pid", pid)
			w.Header().Set("X-Worker-Generation", generation)
			fmt.Fprintf(w, "slot=%s pid=%s generation=%s runtime=go/%s\n", slot, pid, generation, runtime.Version())
		}),
		IdleTimeout: 2 * time.Second,
	}
	for _, l := range listeners[1:] {
		go serve(srv, l)
	}
	go serve(srv, listeners[0])

	// The listeners accept from here on (the kernel queues connections until Serve takes them): ready.
	// SdNotify(false, ...) keeps NOTIFY_SOCKET for any later notification (WATCHDOG=1, STOPPING=1).
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Printf("sd_notify: %v", err)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatalf("shutdown: %v", err)
	}
}

func serve(srv *http.Server, l net.Listener) {
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		log.Fatalf("serve: %v", err)
	}
}
