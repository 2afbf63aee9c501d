import Capture
import Foundation
import NIOConcurrencyHelpers
import Replay
import ReplayReport
import Testing

/// Production and staging as real HTTP servers on loopback, staging with
/// known faults; live capture on lo records curl's requests to production
/// with production's responses, goreplay replays them against staging, and
/// the report must find exactly those faults.
@Suite(
    "Report end to end on loopback", .serialized,
    .enabled(if: getuid() == 0, "live capture needs root (CI runs as root)"))
struct ReportEndToEndTests {
    /// Requests per endpoint.
    static let perEndpoint = 12
    static let slowMilliseconds: Int64 = 40

    static func production(_ path: String) -> SiteServer.Behaviour {
        if path.hasPrefix("/slow/") { return .answer(status: 200, delayMilliseconds: slowMilliseconds, body: "slow") }
        if path.hasPrefix("/search") {
            return .answer(status: 200, delayMilliseconds: 0, body: String(repeating: "r", count: 1000))
        }
        // 60 ms, so the few ms a loaded machine adds to one side cannot double a ratio.
        return .answer(status: 200, delayMilliseconds: 60, body: "ok")
    }

    /// 500 on /api/broken, 3× slower on /slow, drops /drop, short bodies on /search.
    static func staging(_ path: String) -> SiteServer.Behaviour {
        if path.hasPrefix("/api/broken/") { return .answer(status: 500, delayMilliseconds: 0, body: "error") }
        if path.hasPrefix("/slow/") {
            return .answer(status: 200, delayMilliseconds: 3 * slowMilliseconds, body: "slow")
        }
        if path.hasPrefix("/drop/") { return .drop }
        if path.hasPrefix("/search") {
            return .answer(status: 200, delayMilliseconds: 0, body: String(repeating: "r", count: 100))
        }
        return production(path)
    }

    /// Five endpoints interleaved; the last request is a healthy one.
    static func requestLines() -> [String] {
        var lines: [String] = []
        for index in 0..<perEndpoint {
            lines.append("GET /drop/deadbeef\(String(format: "%032x", index * 7919 + 1))")
            lines.append("GET /api/broken/\(UUID().uuidString.lowercased())")
            lines.append("GET /slow/\(index + 100)")
            lines.append("GET /search?q=vat+\(index)")
            lines.append("GET /api/content/\(index * 31 + 5)")
        }
        return lines
    }

    /// Runs capture → replay → report once; shared by the tests below.
    struct Run {
        var directory: URL
        var report: DiffReport
        var text: String
        var htmlPath: String
        var productionRequests: Int
        var stagingRequests: Int
    }

    /// The caller removes `Run.directory`; on failure it is removed here.
    static func captureReplayReport() async throws -> Run {
        let directory = try makeTemporaryDirectory()
        do {
            return try await captureReplayReport(in: directory)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    private static func captureReplayReport(in directory: URL) async throws -> Run {
        let production = try await SiteServer(route: Self.production)
        let staging = try await SiteServer(route: Self.staging)
        defer {
            Task {
                await production.shutdown()
                await staging.shutdown()
            }
        }
        // 1. Capture on lo, as `--input-raw :PORT --input-raw-track-response`
        // does on a production host: curl's requests to production (one
        // keep-alive connection) and production's responses, types 1 and 2.
        let lines = Self.requestLines()
        let input = try RawCaptureInput(
            options: try RawInputOptions(addresses: ["127.0.0.1:\(production.port)"]).tracking())
        let stream = input.messages()
        let captured = NIOLockedValueBox([ReplayMessage]())
        let expected = 2 * lines.count
        let consumer = Task {
            for try await message in stream {
                let count = captured.withLockedValue { list in
                    list.append(message)
                    return list.count
                }
                if count >= expected { break }
            }
        }
        var curlArguments = ["-sS", "--max-time", "60"]
        for line in lines { curlArguments += ["-o", "/dev/null", production.url + line.dropFirst(4)] }
        let client = try runProgram("/usr/bin/curl", curlArguments)
        guard client.status == 0 else { throw TestFailure("curl to production failed: \(client.error)") }
        for _ in 0..<200 where captured.withLockedValue({ $0.count }) < expected {
            try await Task.sleep(for: .milliseconds(50))
        }
        consumer.cancel()
        _ = await consumer.result
        let capture = directory.appendingPathComponent("capture.gor").path
        try writeGor(captured.withLockedValue { $0 }, to: capture)

        // 2. Replay the capture to staging, writing requests, original and replayed responses.
        let replayed = directory.appendingPathComponent("replayed.gor").path
        let second = await runGoReplay([
            "--input-file", capture, "--output-http", staging.url, "--output-http-track-response", "--output-file",
            replayed,
            "--output-http-timeout", "5s", "--output-file-append", "--exit-after", "60s",
        ])
        guard second.status == 0 else { throw TestFailure("replaying to staging failed: \(second.errorText)") }

        // 3. Report: JSON for the figures, text for a terminal, HTML for the browser test.
        let htmlPath = directory.appendingPathComponent("report.html").path
        let json = await runGoReplay([
            "report", "--json", "--html", htmlPath, "--body-length-threshold", "50%", replayed,
        ])
        guard json.status == 0 else { throw TestFailure("report failed: \(json.errorText)") }
        let report = try JSONDecoder().decode(DiffReport.self, from: Data(json.output.utf8))
        let text = await runGoReplay(["report", replayed])
        return Run(
            directory: directory, report: report, text: text.output, htmlPath: htmlPath,
            productionRequests: production.requests,
            stagingRequests: staging.requests)
    }

    @Test("the report finds the 500s, the slow endpoint, the drops and the short bodies, and nothing else")
    func knownMismatches() async throws {
        let run = try await Self.captureReplayReport()
        defer { try? FileManager.default.removeItem(at: run.directory) }
        let report = run.report
        let n = Self.perEndpoint
        #expect(run.productionRequests == 5 * n)
        #expect(run.stagingRequests >= 5 * n) // a dropped request may be retried

        // Matrix.
        #expect(report.requests == 5 * n)
        #expect(report.compared == 4 * n)
        #expect(report.mismatched == n)
        #expect(
            report.statusPairs == [
                PairCount(original: 200, replayed: 200, count: 3 * n),
                PairCount(original: 200, replayed: 500, count: n),
            ])
        #expect(
            report.classPairs == [
                ClassPairCount(original: "2xx", replayed: "2xx", count: 3 * n),
                ClassPairCount(original: "2xx", replayed: "5xx", count: n),
            ])
        #expect(report.noReplayedResponse.map(\.count).reduce(0, +) == n)
        #expect(
            report.noReplayedResponse.first?.cause.hasPrefix("no response recorded") == true,
            "\(report.noReplayedResponse)")
        #expect(report.noOriginalResponse == 0 && report.orphanResponses == 0 && report.skippedRecords == 0)

        // Endpoints: ids, UUIDs, numbers and hashes collapsed to five rows.
        let rows = Dictionary(uniqueKeysWithValues: report.endpoints.map { ($0.endpoint, $0) })
        #expect(
            Set(rows.keys) == [
                "GET /drop/{hash}", "GET /api/broken/{uuid}", "GET /slow/{n}", "GET /search", "GET /api/content/{n}",
            ])
        let broken = try #require(rows["GET /api/broken/{uuid}"])
        #expect(broken.requests == n && broken.mismatched == n && broken.mismatchRate == 1)
        #expect(broken.topMismatches.count == 1)
        #expect(broken.topMismatches.first?.original == 200 && broken.topMismatches.first?.replayed == 500)
        #expect(broken.topMismatches.first?.example.hasPrefix("GET /api/broken/") == true)
        let dropped = try #require(rows["GET /drop/{hash}"])
        #expect(dropped.noReplayedResponse == n && dropped.compared == 0)
        for healthy in ["GET /slow/{n}", "GET /search", "GET /api/content/{n}"] {
            #expect(rows[healthy]?.mismatched == 0 && rows[healthy]?.noReplayedResponse == 0, "\(healthy)")
        }

        // Latency: staging is 3× slower on /slow (40 ms → 120 ms); same on /api/content.
        // Lower bounds are the servers' own delays; the upper bounds leave
        // room for a loaded CI machine.
        let slow = try #require(rows["GET /slow/{n}"])
        #expect(slow.original.p50 >= 38 && slow.original.p50 < 200, "\(slow.original)")
        #expect(slow.replayed.p50 >= 114 && slow.replayed.p50 < 400, "\(slow.replayed)")
        let slowRatio = try #require(slow.ratioP50)
        #expect(slowRatio > 2 && slowRatio < 4, "ratio \(slowRatio)")
        let content = try #require(rows["GET /api/content/{n}"])
        let contentRatio = try #require(content.ratioP50)
        #expect(contentRatio > 0.5 && contentRatio < 2, "ratio \(contentRatio)")
        #expect(report.original.count == 5 * n && report.replayed.count == 4 * n)

        // Bodies: /search answers 100 bytes instead of 1000.
        #expect(report.bodyLengthDifferences?.count == n)
        #expect(report.bodyLengthDifferences?.examples.first?.originalLength == 1000)
        #expect(report.bodyLengthDifferences?.examples.first?.replayedLength == 100)

        // The terminal summary says the same.
        #expect(run.text.contains("requests \(5 * n): compared \(4 * n), mismatched \(n) (25.0%)"), "\(run.text)")
        #expect(run.text.contains("200 → 500: \(n)"))
        #expect(run.text.contains("GET /api/broken/{uuid}"))
    }
}

extension RawInputOptions {
    func tracking() -> Self {
        var options = self
        options.trackResponse = true
        return options
    }
}
