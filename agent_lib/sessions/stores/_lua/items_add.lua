-- Append items to a session's list, creating the session when it does not exist (or
-- has ended), in one script: a data write, so the session's version goes up by one.
-- KEYS[4] session key, KEYS[5] its item list, then, when records are written, the set
-- naming records and each record's two hashes (common.lua's write_records), then sessions this
-- write may remove to stay under the caps, in pairs of key and item list (none on the
-- first call). ARGV: id, ttl_us, lifetime_us, max_sessions, max_memory, key base, mode
-- ('keep' | 'set': also replace the payload | 'update': replace it, only on a live
-- session | 'create': only when no live session has the id), payload, payload size,
-- write token, eviction budget, skip ('1': nothing when the first item is already in
-- the list), n, then the LRU score of each of the n candidates, then the number of
-- record writes and each write (as write_records reads them), then the items. The session's accounted bytes are its payload's
-- estimate plus its item part (common.lua's item_part): with 'keep', the payload's
-- estimate stays what it was.
-- Returns {1, created, now, length, evicted, version}; {-1} when the session alone
-- would exceed max_memory; {0} when mode 'update' found no live session; {-3} when
-- mode 'create' found one; {-4} when skip found the item; {3, ids, scores} when room
-- is needed: call again declaring those sessions. Nothing is written unless 1.
local id, ttl, lifetime = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_sessions, max_memory, base = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local set_payload, size = ARGV[7] ~= 'keep', tonumber(ARGV[9])
local token, budget, skip = ARGV[10], tonumber(ARGV[11]), ARGV[12] == '1'
local SCORES = 13
local RECORDS_AT = SCORES + tonumber(ARGV[SCORES]) + 1
local n_records = tonumber(ARGV[RECORDS_AT])
local FIRST = RECORDS_AT + 1
for _ = 1, n_records do
  FIRST = FIRST + 5 + 2 * tonumber(ARGV[FIRST + 4])
end
-- declared keys: the records' set and keys, when written, come before the candidates
local CANDIDATES = 6
if n_records > 0 then
  CANDIDATES = 7 + 2 * n_records
end
local now = now_us()
local head = peek(KEYS[4])
local version, born, stored_token
if head then
  version, born, stored_token = parse_header(head)
  if stored_token == token then
    -- this very call's write, retried after a lost reply: it is already applied
    return {1, born, now, redis.call('LLEN', KEYS[5]), 0, version}
  end
end
local added = 0
for i = FIRST, #ARGV do
  added = added + #ARGV[i] + ITEM_OVERHEAD
end
local px, live = 0, false
if head then
  version = version or 0
  born = born or tonumber(redis.call('ZSCORE', BORN, id)) or now
  px = pttl_for(now, born, ttl, lifetime)
  live = px > 0
end
if not live and ARGV[7] == 'update' then
  return {0}
end
if live and ARGV[7] == 'create' then
  return {-3}
end
if live and skip and FIRST <= #ARGV and redis.call('LPOS', KEYS[5], ARGV[FIRST]) then
  return {-4}
end
if not live and redis.call('HEXISTS', SIZES, id) == 1 then
  -- expired, ended or never indexed: its old items go with it, noted as expired
  local freed = remove(base, {id})
  redis.call('HINCRBY', SIZES, DROPPED, 1)
  redis.call('HINCRBY', SIZES, EVICTED_BYTES, freed)
end
local had, part, data = 0, 0, size
if live then
  had = tonumber(redis.call('HGET', SIZES, id) or '0')
  part = item_part(id, KEYS[5])
  if not set_payload then
    data = math.max(0, had - part)
  end
end
-- an empty list adds nothing; the first item brings the list's own overhead
if added > 0 then
  if part == 0 then
    part = LIST_OVERHEAD
  end
  part = part + added
end
local new = data + part
if max_memory > 0 and new > max_memory then
  return {-1}
end
local grow = new - had
-- a live session only grows in bytes; a new one also counts against max_sessions
local cap_n, adding, keep = max_sessions, 1, false
if live then
  cap_n, adding, keep = 0, 0, id
end
local evicted = 0
if over_caps(cap_n, max_memory, adding, grow) then
  if #KEYS < CANDIDATES then
    local ids = room_candidates(now, ttl, lifetime, cap_n, max_memory, adding, grow, keep, budget)
    if #ids[1] > 0 then
      return {3, ids[1], ids[2]}
    end
  else
    evicted = make_room(base, now, lifetime, cap_n, max_memory, adding, grow, CANDIDATES, SCORES + 1)
  end
end
if live then
  version = version + 1
  local payload = false
  if set_payload then
    payload = ARGV[8]
  end
  rewrite(KEYS[4], version, born, token, payload, px_ms(px))
  redis.call('ZADD', BORN, 'NX', fmt(born), id)
else
  redis.call('UNLINK', KEYS[5])
  born, version = now, 1
  local new_px = px_ms(pttl_for(now, now, ttl, lifetime))
  redis.call('SET', KEYS[4], header(1, now, token) .. ARGV[8], 'PX', new_px)
  redis.call('ZADD', BORN, fmt(now), id)
end
local length = 0
for first = FIRST, #ARGV, CHUNK do
  length = redis.call('RPUSH', KEYS[5], unpack(ARGV, first, math.min(first + CHUNK - 1, #ARGV)))
end
if length == 0 then
  length = redis.call('LLEN', KEYS[5])
end
set_item_part(id, part)
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
account(id, new)
if n_records > 0 then
  write_records(KEYS[6], 7, RECORDS_AT + 1, n_records, id)
end
return {1, born, now, length, evicted, version}
