-- Cleanup of shared records (common.lua), first half: KEYS[4] the set naming them.
-- ARGV: SSCAN cursor, count. Returns {next cursor, record ids}.
local reply = redis.call('SSCAN', KEYS[4], ARGV[1], 'COUNT', ARGV[2])
return reply
