-- wrk script for the memory check of bench/run.sh --rss: GET one task per request, rotating over
-- the lines of a token file (login-tokens.sh output), and stop after a fixed number of requests.
--
--   wrk -t2 -c64 -d<cap>s -s bench/lib/count.lua http://127.0.0.1:PORT -- TOKENS TOTAL THREADS DONE_FILE
--
-- TOKENS: lines "token workspace_id task_id". TOTAL requests are split evenly over the THREADS
-- wrk threads (pass wrk's -t). A thread that has sent its share stops its event loop (responses
-- still in flight are not waited for, at most one per connection) and appends a line to DONE_FILE;
-- wrk's main thread only ends after -d, so bench/run.sh sends wrk SIGINT once DONE_FILE has
-- THREADS lines (-d is a safety cap). done() prints "WRKJSON {...}" like the peer harness's
-- scenario.lua; DONE_FILE lines are "done <requests sent by that thread>".

local thread_no = 0

function setup(thread)
  thread:set("thread_no", thread_no)
  thread_no = thread_no + 1
end

local reqs = {}
local idx = 0
local sent = 0
local limit = 0
local done_file = nil
local finished = false

function init(args)
  local file, total, threads = args[1], tonumber(args[2]), tonumber(args[3])
  done_file = args[4]
  assert(file and total and threads and done_file, "usage: -- TOKENS TOTAL THREADS DONE_FILE")
  local prefix = (wrk.path or "/"):gsub("/+$", "")
  local f = assert(io.open(file, "r"), "cannot open " .. file)
  for line in f:lines() do
    local tok, ws, task = line:match("^%s*(%S+)%s+(%S+)%s+(%S+)")
    if tok and tok:sub(1, 1) ~= "#" then
      reqs[#reqs + 1] = wrk.format("GET", prefix .. "/v1/workspaces/" .. ws .. "/tasks/" .. task,
        { ["Authorization"] = "Bearer " .. tok, ["Accept"] = "application/json" })
    end
  end
  f:close()
  assert(#reqs > 0, "no 'token workspace_id task_id' lines in " .. file)
  local me = thread_no or 0
  limit = math.floor(total / threads)
  if me < total % threads then limit = limit + 1 end
  idx = (me * 5) % #reqs
end

local function finish()
  if finished then return end
  finished = true
  local d = io.open(done_file, "a")
  if d then d:write("done " .. sent .. "\n"); d:close() end
  wrk.thread:stop()
end

function request()
  sent = sent + 1
  if sent >= limit then finish() end
  idx = idx % #reqs + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"rps":%.2f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
