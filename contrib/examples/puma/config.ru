# SPDX-License-Identifier: MIT
# A tiny Rack application for the Puma example: answers with the slot, pid and generation. Loading it takes
# $EXAMPLE_LOAD_SECONDS (default 0), standing in for a real app's boot, so the test can tell readiness after
# the boot from readiness at exec.
slot = ENV.fetch("WORKER_INDEX", "-")
generation = ENV.fetch("WORKER_GENERATION", "-")
sleep Float(ENV.fetch("EXAMPLE_LOAD_SECONDS", "0"))

run lambda { |_env|
  body = "slot=#{slot} pid=#{Process.pid} generation=#{generation} runtime=puma/#{Puma::Const::PUMA_VERSION}\n"
  [200, { "Content-Type" => "text/plain", "X-Worker-Slot" => slot, "X-Worker-Pid" => Process.pid.to_s,
          "X-Worker-Generation" => generation }, [body]]
}
