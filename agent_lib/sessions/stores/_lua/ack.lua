-- A cleanup run has finished: subtract the removals by writes it reported (ARGV:
-- evicted, expired, bytes), keeping any a write added meanwhile for the next run.
-- A retried ack cannot drive a counter below zero.
local fields = {EVICTED, DROPPED, EVICTED_BYTES}
for i, name in ipairs(fields) do
  local n = tonumber(ARGV[i])
  if n ~= 0 and redis.call('HINCRBY', SIZES, name, -n) <= 0 then
    redis.call('HDEL', SIZES, name)
  end
end
return 1
