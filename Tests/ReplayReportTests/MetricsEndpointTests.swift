import Foundation
import GoReplayCLI
import NIOConcurrencyHelpers
import Replay
import Testing

/// `goreplay --metrics` during a real replay to a loopback staging server,
/// scraped with curl and parsed by Python's prometheus_client.
@Suite("Live metrics endpoint", .serialized)
struct MetricsEndpointTests {
    static let python = "/usr/bin/python3"
    static let curl = "/usr/bin/curl"

    /// prometheus_client's text parser; prints one `name{labels} value` JSON map.
    static let parser = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        samples = {}
        for family in text_string_to_metric_families(sys.stdin.read()):
            for sample in family.samples:
                labels = ",".join("%s=%s" % item for item in sorted(sample.labels.items()))
                samples["%s{%s}" % (sample.name, labels)] = sample.value
        print(json.dumps(samples))
        """

    static var toolsPresent: Bool {
        FileManager.default.isExecutableFile(atPath: curl)
            && (try? runProgram(python, ["-c", "import prometheus_client"]).status) == 0
    }

    /// Scrapes with curl and parses with prometheus_client.
    static func scrape(_ url: String, in directory: URL) throws -> [String: Double] {
        let body = try runProgram(
            curl,
            [
                "-sS", "--max-time", "10", "-o", directory.appendingPathComponent("metrics.txt").path, "-w",
                "%{http_code}", url,
            ])
        guard body.status == 0, body.output == "200" else {
            throw TestFailure("curl \(url): status \(body.status) \(body.output) \(body.error)")
        }
        let script = directory.appendingPathComponent("parse.py").path
        try parser.write(toFile: script, atomically: true, encoding: .utf8)
        let parsed = try runProgram(
            "/bin/sh", ["-c", "\(python) \(script) < \(directory.appendingPathComponent("metrics.txt").path)"])
        guard parsed.status == 0 else {
            throw TestFailure("prometheus_client rejected the exposition: \(parsed.error)")
        }
        return try JSONDecoder().decode([String: Double].self, from: Data(parsed.output.utf8))
    }

    @Test(
        "counters scraped mid-run match the run: captured, replayed, statuses per side, mismatches, failures, latency",
        .enabled(if: toolsPresent))
    func countersMatchTheRun() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let staging = try await SiteServer(route: ReportEndToEndTests.staging)
        defer { Task { await staging.shutdown() } }

        // 8 requests on each of 5 endpoints with production's 200s (type 2),
        // then one more a minute later, so the run is still up when scraped.
        let perEndpoint = 8
        let lines = Array(ReportEndToEndTests.requestLines().prefix(5 * perEndpoint))
        let t0: Int64 = 1_700_000_000_000_000_000
        var records: [ReplayMessage] = []
        for (index, line) in lines.enumerated() {
            let at = t0 + Int64(index) * 5_000_000
            records.append(requestRecord(index, line, timestamp: at))
            records.append(responseRecord(.response, index, status: 200, latencyMilliseconds: 10, timestamp: at + 1))
        }
        records.append(requestRecord(999, "GET /api/content/1", timestamp: t0 + 60_000_000_000))
        let capture = directory.appendingPathComponent("capture.gor").path
        try writeGor(records, to: capture)

        let errors = NIOLockedValueBox([String]())
        let command = GoReplayCommand(
            rawInputFactory: nil, handlesSignals: false,
            standardError: { line in errors.withLockedValue { $0.append(line) } },
            standardOutput: { _ in })
        let arguments = [
            "--input-file", capture, "--output-http", staging.url, "--metrics", "127.0.0.1:0", "--exit-after", "20s",
        ]
        let running = Task { await command.run(arguments: arguments) }

        // The address it bound, from its first line.
        var url: String?
        for _ in 0..<200 where url == nil {
            url =
                errors.withLockedValue { $0 }.compactMap { line -> String? in
                    guard let range = line.range(of: "metrics on ") else { return nil }
                    return String(line[range.upperBound...])
                }.first
            if url == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let metricsURL = try #require(url, "no metrics line: \(errors.withLockedValue { $0 })")

        // Scrape until every replayed request is settled and compared (at most ~16 s of the
        // run's 20: counters are published in batches, so a loaded machine needs the room).
        let n = Double(perEndpoint)
        var samples: [String: Double] = [:]
        for _ in 0..<80 {
            samples = try Self.scrape(metricsURL, in: directory)
            let settled =
                (samples["goreplay_responses_total{class=2xx,side=replayed}"] ?? 0)
                + (samples["goreplay_responses_total{class=5xx,side=replayed}"] ?? 0)
                + (samples["goreplay_replay_failures_total{cause=connection}"] ?? 0)
                + (samples["goreplay_replay_failures_total{cause=timeout}"] ?? 0)
            if settled >= 5 * n, (samples["goreplay_status_mismatches_total{}"] ?? 0) >= n { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(samples["goreplay_requests_captured_total{}"] == 5 * n, "\(samples)")
        #expect(samples["goreplay_responses_total{class=2xx,side=original}"] == 5 * n)
        #expect(samples["goreplay_responses_total{class=2xx,side=replayed}"] == 3 * n)
        #expect(samples["goreplay_responses_total{class=5xx,side=replayed}"] == n)
        #expect(samples["goreplay_status_mismatches_total{}"] == n)
        #expect(samples["goreplay_replay_failures_total{cause=connection}"] == n)
        #expect(samples["goreplay_replay_failures_total{cause=timeout}"] == 0)
        #expect(samples["goreplay_response_latency_seconds_count{side=original}"] == 5 * n)
        #expect(samples["goreplay_response_latency_seconds_count{side=replayed}"] == 4 * n)
        // Original latencies were all 10 ms: all in the 25 ms bucket, none in the 5 ms one.
        #expect(samples["goreplay_response_latency_seconds_bucket{le=0.025,side=original}"] == 5 * n)
        #expect(samples["goreplay_response_latency_seconds_bucket{le=0.005,side=original}"] == 0)
        #expect(samples["goreplay_requests_dropped_total{reason=queue_full}"] == 0)
        #expect(samples["goreplay_queue_depth{}"] == 0)
        #expect(samples["goreplay_requests_replayed_total{}"] == 5 * n)

        // The exit summary, written after the scrape, agrees.
        let status = await running.value
        #expect(status == 0)
        let summary = errors.withLockedValue { $0 }.joined(separator: "\n")
        #expect(summary.contains("responses \(4 * perEndpoint), failed \(perEndpoint)"), "\(summary)")
        #expect(summary.contains("requests read \(5 * perEndpoint)"), "\(summary)")
    }

    @Test("a bad or busy --metrics address is a usage or start-up error, not a crash")
    func badAddress() async throws {
        let bad = await runGoReplay(["--input-dummy", "x", "--output-null", "--metrics", "nowhere"])
        #expect(bad.status == 2)
        #expect(bad.errorText.contains("--metrics") && bad.errorText.contains("HOST:PORT"), "\(bad.errorText)")
        let staging = try await SiteServer(route: { _ in .drop })
        defer { Task { await staging.shutdown() } }
        let busy = await runGoReplay([
            "--input-dummy", "x", "--output-null", "--metrics", staging.address, "--exit-after", "1s",
        ])
        #expect(busy.status == 1)
        #expect(busy.errorText.contains("cannot listen"), "\(busy.errorText)")
    }
}
