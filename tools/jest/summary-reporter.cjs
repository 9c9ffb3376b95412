// Appends each jest run's totals to test-artifacts/jest-summary.jsonl so that scripts/test.mjs
// can print one closing "N passed, N failed" line for the whole suite.
const fs = require('node:fs');
const path = require('node:path');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const dir = path.join(__dirname, '..', '..', 'test-artifacts');
    fs.mkdirSync(dir, { recursive: true });
    const line = {
      passed: results.numPassedTests,
      failed: results.numFailedTests + (results.numRuntimeErrorTestSuites || 0),
      skipped: results.numPendingTests + results.numTodoTests,
    };
    fs.appendFileSync(path.join(dir, 'jest-summary.jsonl'), JSON.stringify(line) + '\n');
  }
}
module.exports = SummaryReporter;
