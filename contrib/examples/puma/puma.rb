# SPDX-License-Identifier: MIT
# Puma settings for running under corral (tested with Debian 12's puma 5.6.5):
#
#   corral --listen 127.0.0.1:8080 --count 4 -- /usr/bin/puma --config contrib/examples/puma/puma.rb \
#       contrib/examples/puma/config.ru
#
# Sockets: Puma takes LISTEN_FDS itself when LISTEN_PID is its own pid (corral execs it directly: no shell
# in between); bind_to_activated_sockets binds those and nothing else.
#
# Readiness: a small hook in this file, not Puma's systemd plugin. The plugin needs the sd_notify gem
# (Debian: ruby-sd-notify, which the puma package does not pull in), and its 0.1.1 cannot send to an
# abstract socket: corral's NOTIFY_SOCKET ("@corral/...") makes it raise ENOENT and Puma exit 1. So this file
# takes NOTIFY_SOCKET away before Puma looks for it, and sends READY=1 itself from Puma's "booted" event:
# the app is loaded and the server thread accepts on the inherited socket.

require "socket"

notify_socket = ENV.delete("NOTIFY_SOCKET") || ENV["CORRAL_PUMA_NOTIFY_SOCKET"]
ENV["CORRAL_PUMA_NOTIFY_SOCKET"] = notify_socket if notify_socket

if notify_socket
  sd_notify = lambda do |state|
    address = notify_socket.start_with?("@") ? "\0" + notify_socket[1..] : notify_socket
    Socket.open(:UNIX, :DGRAM) { |s| s.send(state, 0, Socket.pack_sockaddr_un(address)) }
  end
  # Single mode fires "booted" once the server thread runs; Puma 5.6's DSL has no hook for it.
  Puma::Events.prepend(Module.new do
    define_method(:fire_on_booted!) do
      super()
      sd_notify.call("READY=1")
    end
  end)
end

bind_to_activated_sockets "only"
workers 0            # corral runs the pool: one single-mode Puma per slot
threads 1, 4
# On SIGTERM: stop accepting, finish the requests in flight, exit 0 (not by re-raising SIGTERM).
raise_exception_on_sigterm false
persistent_timeout 2 # idle keep-alive connections end after this
# Threads read their requests themselves, without Puma's reactor: on SIGTERM the reactor drops connections
# it accepted but whose request it has not read yet (the client sees "connection closed without
# response"), while a thread finishes every connection it took. Put a buffering proxy (nginx) in front
# for slow clients, as one would anyway.
queue_requests false
