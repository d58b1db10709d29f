-- KEYS[4] session key, KEYS[5] its item list, KEYS[6..] sessions this create may remove
-- to stay under the caps, in pairs of key and item list (none on the first call). ARGV: id, payload, size, ttl_us, lifetime_us, max_sessions,
-- max_memory, key base, write token, eviction budget, then the LRU score of each
-- candidate.
-- Returns {1, now, evicted}; {0} when the id is taken; {2, stored value} when the id
-- holds this very call's write (a retry after a lost reply); {-1} when the session alone
-- is over max_memory; {3, ids, scores} when room is needed: call again declaring
-- those sessions.
local id, size = ARGV[1], tonumber(ARGV[3])
local ttl, lifetime = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_sessions, max_memory, base = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local token, budget = ARGV[9], tonumber(ARGV[10])
local head = peek(KEYS[4])
if head then
  local _, _, stored_token = parse_header(head)
  if stored_token == token then
    return {2, redis.call('GET', KEYS[4])}
  end
  return {0}
end
if max_memory > 0 and size > max_memory then
  return {-1}
end
local now = now_us()
if redis.call('HEXISTS', SIZES, id) == 1 then
  -- the index entry of an earlier session of this id whose key Redis already expired
  local freed = remove(base, {id})
  redis.call('HINCRBY', SIZES, DROPPED, 1)
  redis.call('HINCRBY', SIZES, EVICTED_BYTES, freed)
end
local evicted = 0
if over_caps(max_sessions, max_memory, 1, size) then
  if #KEYS == 5 then
    local ids = room_candidates(now, ttl, lifetime, max_sessions, max_memory, 1, size, false, budget)
    if #ids[1] > 0 then
      return {3, ids[1], ids[2]}
    end
  else
    evicted = make_room(base, now, lifetime, max_sessions, max_memory, 1, size, 6, 11)
  end
end
redis.call('SET', KEYS[4], header(1, now, token) .. ARGV[2], 'PX', px_ms(pttl_for(now, now, ttl, lifetime)))
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
redis.call('ZADD', BORN, fmt(now), id)
redis.call('HSET', SIZES, id, size)
redis.call('HINCRBY', SIZES, TOTAL, size)
return {1, now, evicted}
