-- KEYS[4] session key, KEYS[5] its item list, KEYS[6..] sessions this write may remove
-- to stay under max_memory, in pairs of key and item list (none on the first call). ARGV: id, payload, size, ttl_us, lifetime_us, max_memory,
-- key base, expected version ('' for any), eviction budget, write token, then the LRU
-- score of each candidate. The token replaces the stored one: a retry of this call
-- after a lost reply finds it and reports the write as done instead of a conflict.
-- Returns {1, created, now, version, evicted}; false when the session does not exist;
-- {-2, stored version} on a version mismatch; {-1} when the session alone (with its
-- items) is over max_memory; {3, ids, scores} when room is needed: call again declaring those
-- sessions.
local id, size = ARGV[1], tonumber(ARGV[3])
local ttl, lifetime = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_memory, base, budget = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[9])
local head = peek(KEYS[4])
if not head then
  return false
end
local version, born, stored_token = parse_header(head)
if not version then
  version = 0
end
if stored_token == ARGV[10] then
  -- this very call's write, retried after a lost reply: it is already applied
  return {1, born, now_us(), version, 0}
end
if ARGV[8] ~= '' and tonumber(ARGV[8]) ~= version then
  return {-2, version}
end
-- the items stay, and so do their bytes
local new = size + item_part(id, KEYS[5])
if max_memory > 0 and new > max_memory then
  return {-1}
end
local now = now_us()
if not born then
  born = tonumber(redis.call('ZSCORE', BORN, id)) or now
end
local px = pttl_for(now, born, ttl, lifetime)
if px <= 0 then
  remove(base, {id})
  return false
end
local old = tonumber(redis.call('HGET', SIZES, id) or '0')
local evicted = 0
if over_caps(0, max_memory, 0, new - old) then
  if #KEYS == 5 then
    local ids = room_candidates(now, ttl, lifetime, 0, max_memory, 0, new - old, id, budget)
    if #ids[1] > 0 then
      return {3, ids[1], ids[2]}
    end
  else
    evicted = make_room(base, now, lifetime, 0, max_memory, 0, new - old, 6, 11)
  end
end
redis.call('SET', KEYS[4], header(version + 1, born, ARGV[10]) .. ARGV[2], 'PX', px_ms(px))
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
redis.call('ZADD', BORN, 'NX', fmt(born), id)
account(id, new)
return {1, born, now, version + 1, evicted}
