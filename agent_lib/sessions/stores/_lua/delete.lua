-- ARGV: id, key base. Returns 1 when the session key existed.
local _, existed = remove(ARGV[2], {ARGV[1]})
return existed
