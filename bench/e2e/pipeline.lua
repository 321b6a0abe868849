-- HTTP/1.1 pipelining for wrk (RFC 9112 §9.3.2): every write carries `depth` requests for the
-- URL's path, sent back to back before any response is read.
-- Usage: wrk -s pipeline.lua http://127.0.0.1:8000/plaintext -- 16
-- wrk counts each response as a request, but records latency once per batch (first write to last
-- response), so p99 of a pipelined run is the round trip of a whole batch of `depth` requests.

local batch

init = function(args)
  local depth = tonumber(args[1]) or 16
  local requests = {}
  for i = 1, depth do
    requests[i] = wrk.format()
  end
  batch = table.concat(requests)
end

request = function()
  return batch
end
