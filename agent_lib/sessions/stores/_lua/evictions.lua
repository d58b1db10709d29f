-- Has the index still to be checked against its keys? 1 while a check is under way
-- (SWEEP) or when Redis' eviction counter (INFO stats evicted_keys) has moved since the
-- last check began (SEEN), else 0. Read-only; a cleanup asks once it has finished.
if redis.call('HEXISTS', SIZES, SWEEP) == 1 then
  return 1
end
local evictions = string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)') or '0'
if evictions ~= (redis.call('HGET', SIZES, SEEN) or '0') then
  return 1
end
return 0
