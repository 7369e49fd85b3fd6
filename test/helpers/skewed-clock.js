/* global process */
// Preloaded into a child process (NODE_OPTIONS=--import) to make its clock run
// FSALE_TEST_CLOCK_SKEW_MS ahead: a host whose clock is wrong, for clock-skew tests.
const skew = Number(process.env.FSALE_TEST_CLOCK_SKEW_MS ?? '0');
const realNow = Date.now;
Date.now = () => realNow() + skew;
