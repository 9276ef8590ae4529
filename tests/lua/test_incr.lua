-- SPDX-License-Identifier: Apache-2.0
-- test_incr: the script the foundation tests run through the pool.
-- KEYS[1]: a counter key.  ARGV[1]: the increment (integer).
-- Reply: the counter's new value (integer).
return redis.call('INCRBY', KEYS[1], ARGV[1])
