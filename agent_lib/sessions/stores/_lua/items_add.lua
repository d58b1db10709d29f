-- Append items to a session's list, creating the session when it does not exist (or
-- has ended), in one script. KEYS[4] session key, KEYS[5] its item list. ARGV: id,
-- ttl_us, lifetime_us, max_sessions, max_memory, key base, mode ('keep' | 'set': also
-- replace the payload | 'update': replace it, only on a live session), payload, payload size, key overhead, index overhead, list
-- overhead, item overhead, items... The session's accounted bytes are its payload
-- estimate plus every item's length and overhead.
-- Returns {1, created, now, length, evicted}, {-1} when the session alone would exceed
-- max_memory, or {0} when mode 'update' found no live session.
local id, ttl, lifetime = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_sessions, max_memory, base = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local set_payload, size = ARGV[7] ~= 'keep', tonumber(ARGV[9])
local key_overhead, index_overhead = tonumber(ARGV[10]), tonumber(ARGV[11])
local list_overhead, item_overhead = tonumber(ARGV[12]), tonumber(ARGV[13])
local FIRST = 14
local added = 0
for i = FIRST, #ARGV do
  added = added + #ARGV[i] + item_overhead
end
local now = now_us()
local born, px, live = now, 0, false
if redis.call('EXISTS', KEYS[4]) == 1 then
  born = tonumber(redis.call('ZSCORE', BORN, id))
  if not born then
    born = now
    redis.call('ZADD', BORN, fmt(now), id)
  end
  px = pttl_for(now, born, ttl, lifetime)
  live = px > 0
end
if not live and ARGV[7] == 'update' then
  return {0}
end
if not live and redis.call('HEXISTS', SIZES, id) == 1 then
  -- expired, ended or never indexed: its old items go with it
  remove(base, {id})
end
local grow, had = added, 0
if live then
  had = tonumber(redis.call('HGET', SIZES, id) or '0')
  if set_payload then
    local was = redis.call('STRLEN', KEYS[4])
    local old_size = math.ceil((#KEYS[4] + was + key_overhead) / 16) * 16
      + index_overhead + 2 * #id + list_overhead
    grow = grow + size - old_size
  end
else
  grow = grow + size
end
if max_memory > 0 and had + grow > max_memory then
  return {-1}
end
local evicted
if live then
  evicted = make_room_for_write(base, 0, max_memory, 0, grow, id)
  if set_payload then
    redis.call('SET', KEYS[4], ARGV[8], 'PX', px_ms(px))
  else
    redis.call('PEXPIRE', KEYS[4], px_ms(px))
  end
else
  redis.call('UNLINK', KEYS[5])
  evicted = make_room_for_write(base, max_sessions, max_memory, 1, grow, false)
  born = now
  redis.call('SET', KEYS[4], ARGV[8], 'PX', px_ms(pttl_for(now, now, ttl, lifetime)))
  redis.call('ZADD', BORN, fmt(now), id)
end
local length = 0
for first = FIRST, #ARGV, CHUNK do
  length = redis.call('RPUSH', KEYS[5], unpack(ARGV, first, math.min(first + CHUNK - 1, #ARGV)))
end
if length == 0 then
  length = redis.call('LLEN', KEYS[5])
end
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
redis.call('HINCRBY', SIZES, id, grow)
redis.call('HINCRBY', SIZES, TOTAL, grow)
return {1, born, now, length, evicted}
