import Foundation
import Replay
import Testing

@testable import ReplayReport

@Suite("Report join and aggregation")
struct ReportBuilderTests {
    @Test("paths collapse ids, numbers, UUIDs and hashes; slugs stay; patterns win")
    func normalisation() throws {
        let plain = EndpointNormaliser()
        #expect(plain.normalisedPath("/api/content/123?fields=title") == "/api/content/{n}")
        #expect(plain.normalisedPath("/a/0f8fad5b-d9cb-469f-a165-70867728950e/b") == "/a/{uuid}/b")
        #expect(
            plain.normalisedPath("/assets/3f786850e387550fdab836ed7e6dc881de23001b.css")
                == "/assets/3f786850e387550fdab836ed7e6dc881de23001b.css")
        #expect(plain.normalisedPath("/media/3f786850e387550fdab836ed7e6dc881de23001b") == "/media/{hash}")
        #expect(
            plain.normalisedPath("/government/publications/vat-rates-2024") == "/government/publications/vat-rates-2024"
        )
        #expect(plain.normalisedPath("/t/AbC123xyz987QrS456tuv") == "/t/{id}")
        #expect(plain.normalisedPath("http://www.gov.uk/x/9") == "/x/{n}")
        let custom = EndpointNormaliser(patterns: [try .init("/government/publications/*"), try .init("/search/**")])
        #expect(custom.normalisedPath("/government/publications/vat-rates-2024") == "/government/publications/*")
        #expect(custom.normalisedPath("/government/publications/a/b") == "/government/publications/a/b")
        #expect(custom.normalisedPath("/search/all/news?q=1") == "/search/**")
        #expect(custom.normalisedPath("/search") == "/search")
        #expect(throws: ReportError.self) { try EndpointNormaliser.Pattern("/a/**/b") }
        #expect(throws: ReportError.self) { try EndpointNormaliser.Pattern("a/b") }
    }

    @Test("status pairs, causes, orphans and examples from hand-made records")
    func joinByID() {
        var builder = ReportBuilder()
        let t: Int64 = 1_700_000_000_000_000_000
        // 0: 200→200; 1: 200→500; 2: no replay (a later request was answered); 3: 404→404;
        // 4: only a replayed response (orphan); 5: no original; 6: unreadable replay;
        // 7: last request, no replay: in flight.
        builder.add(requestRecord(0, "GET /a/1", timestamp: t))
        builder.add(responseRecord(.response, 0, status: 200, latencyMilliseconds: 10, timestamp: t))
        builder.add(requestRecord(1, "GET /a/2", timestamp: t + 1))
        builder.add(requestRecord(2, "GET /b", timestamp: t + 2))
        builder.add(responseRecord(.response, 1, status: 200, latencyMilliseconds: 10, timestamp: t + 1))
        builder.add(responseRecord(.response, 2, status: 200, latencyMilliseconds: 10, timestamp: t + 2))
        builder.add(responseRecord(.replayedResponse, 0, status: 200, latencyMilliseconds: 30, timestamp: t))
        builder.add(responseRecord(.replayedResponse, 1, status: 500, latencyMilliseconds: 30, timestamp: t + 1))
        builder.add(requestRecord(3, "GET /a/3", timestamp: t + 3))
        builder.add(responseRecord(.response, 3, status: 404, latencyMilliseconds: 10, timestamp: t + 3))
        builder.add(responseRecord(.replayedResponse, 3, status: 404, latencyMilliseconds: 30, timestamp: t + 3))
        builder.add(responseRecord(.replayedResponse, 4, status: 200, latencyMilliseconds: 30, timestamp: t + 4))
        builder.add(requestRecord(5, "GET /c", timestamp: t + 5))
        builder.add(responseRecord(.replayedResponse, 5, status: 200, latencyMilliseconds: 30, timestamp: t + 5))
        builder.add(requestRecord(6, "GET /c", timestamp: t + 6))
        builder.add(responseRecord(.response, 6, status: 200, latencyMilliseconds: 10, timestamp: t + 6))
        builder.add(
            ReplayMessage(
                type: .replayedResponse, id: hexID(6), timestamp: t + 6, latency: 1, payload: Array("garbage".utf8)))
        builder.add(requestRecord(7, "GET /d", timestamp: t + 7))
        builder.add(responseRecord(.response, 7, status: 200, latencyMilliseconds: 10, timestamp: t + 7))
        #expect(builder.pendingCount == 4) // 2, 4, 5, 7
        let report = builder.finish(files: ["x.gor"], skippedRecords: 0)

        #expect(report.requests == 7)
        #expect(report.compared == 3)
        #expect(report.mismatched == 1)
        #expect(report.orphanResponses == 1)
        #expect(report.noOriginalResponse == 1)
        #expect(
            report.statusPairs == [
                PairCount(original: 200, replayed: 200, count: 1), PairCount(original: 200, replayed: 500, count: 1),
                PairCount(original: 404, replayed: 404, count: 1),
            ])
        #expect(report.classPairs.first { $0.original == "2xx" && $0.replayed == "5xx" }?.count == 1)
        #expect(report.classPairs.first { $0.original == "4xx" && $0.replayed == "4xx" }?.count == 1)
        let causes = Dictionary(uniqueKeysWithValues: report.noReplayedResponse.map { ($0.cause, $0.count) })
        #expect(causes == [ReportBuilder.noResponse: 1, ReportBuilder.unreadable: 1, ReportBuilder.inFlight: 1])
        let a = report.endpoints.first { $0.endpoint == "GET /a/{n}" }
        #expect(a?.requests == 3)
        #expect(a?.mismatched == 1)
        #expect(a?.topMismatches == [PairExample(original: 200, replayed: 500, count: 1, example: "GET /a/2")])
        #expect(a?.ratioP50 != nil && abs((a?.ratioP50 ?? 0) - 3) < 0.3)
        #expect(report.original.count == 6) // every readable original (0,1,2,3,6,7)
    }

    @Test("memory is bounded by the pending window; evicted requests are settled with what they have")
    func boundedWindow() {
        var options = ReportOptions()
        options.pendingWindow = 100
        var builder = ReportBuilder(options: options)
        let t: Int64 = 1_700_000_000_000_000_000
        // 10 000 requests whose replayed responses never come.
        var peak = 0
        for index in 0..<10_000 {
            builder.add(requestRecord(index, "GET /x/\(index)", timestamp: t + Int64(index)))
            builder.add(
                responseRecord(.response, index, status: 200, latencyMilliseconds: 1, timestamp: t + Int64(index)))
            peak = max(peak, builder.pendingCount)
        }
        // Then a complete one: settled at once.
        builder.add(requestRecord(20_000, "GET /y", timestamp: t + 20_000))
        builder.add(responseRecord(.response, 20_000, status: 200, latencyMilliseconds: 1, timestamp: t + 20_000))
        builder.add(
            responseRecord(.replayedResponse, 20_000, status: 200, latencyMilliseconds: 1, timestamp: t + 20_000))
        #expect(peak <= 101)
        let report = builder.finish(files: [], skippedRecords: 0)
        #expect(report.requests == 10_001)
        #expect(report.compared == 1)
        #expect(report.evictedFromWindow == 9_901) // the last request pushed one more out
        #expect(report.noReplayedResponse == [CauseCount(cause: ReportBuilder.noResponse, count: 10_000)])
    }

    @Test("2xx bodies differing beyond the threshold are listed; other classes are not")
    func bodyLengths() throws {
        var options = ReportOptions()
        options.bodyLengthThreshold = try BodyLengthThreshold(parsing: "10%")
        var builder = ReportBuilder(options: options)
        let t: Int64 = 1
        let pairs: [(Int, String, Int, String)] = [
            (200, String(repeating: "a", count: 100), 200, String(repeating: "a", count: 105)), // within 10%
            (200, String(repeating: "a", count: 100), 200, String(repeating: "a", count: 20)), // beyond
            (404, String(repeating: "a", count: 100), 404, ""), // not 2xx
        ]
        for (index, pair) in pairs.enumerated() {
            builder.add(requestRecord(index, "GET /p", timestamp: t))
            builder.add(
                responseRecord(.response, index, status: pair.0, latencyMilliseconds: 1, body: pair.1, timestamp: t))
            builder.add(
                responseRecord(
                    .replayedResponse, index, status: pair.2, latencyMilliseconds: 1, body: pair.3, timestamp: t))
        }
        let report = builder.finish(files: [], skippedRecords: 0)
        #expect(report.bodyLengthDifferences?.count == 1)
        #expect(
            report.bodyLengthDifferences?.examples == [
                BodyLengthExample(request: "GET /p", originalLength: 100, replayedLength: 20)
            ])
        #expect(throws: ReportError.self) { try BodyLengthThreshold(parsing: "ten") }
    }

    @Test("files (.gor and .gor.gz) are merged by timestamp; a request and its responses may be in different files")
    func mergedFiles() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let t: Int64 = 1_700_000_000_000_000_000
        let requests = directory.appendingPathComponent("a.gor").path
        let responses = directory.appendingPathComponent("b.gor").path
        try writeGor((0..<50).map { requestRecord($0, "GET /m/\($0)", timestamp: t + Int64($0) * 10) }, to: requests)
        var responseRecords: [ReplayMessage] = []
        for index in 0..<50 {
            let at = t + Int64(index) * 10
            responseRecords.append(
                responseRecord(.response, index, status: 200, latencyMilliseconds: 2, timestamp: at + 1))
            let status = index % 5 == 0 ? 503 : 200
            responseRecords.append(
                responseRecord(.replayedResponse, index, status: status, latencyMilliseconds: 4, timestamp: at + 2))
        }
        try writeGor(responseRecords, to: responses)
        // The responses as .gor.gz, compressed by gzip(1).
        let gzip = try runProgram("/bin/gzip", [responses])
        #expect(gzip.status == 0, "\(gzip.error)")
        let run = await runGoReplay(["report", "--json", "--pending-window", "4", responses + ".gz", requests])
        #expect(run.status == 0, "\(run.errorText)")
        let report = try JSONDecoder().decode(DiffReport.self, from: Data(run.output.utf8))
        #expect(report.requests == 50)
        #expect(report.compared == 50)
        #expect(report.mismatched == 10)
        #expect(report.evictedFromWindow == 0)
        #expect(report.endpoints.map(\.endpoint) == ["GET /m/{n}"])
    }

    @Test("bad command lines and unreadable files give one located line and a documented status")
    func errors() async throws {
        let noFiles = await runGoReplay(["report"])
        #expect(noFiles.status == 2)
        #expect(noFiles.errorText.contains("no input files"))
        let badFlag = await runGoReplay(["report", "--bogus", "x.gor"])
        #expect(badFlag.status == 2 && badFlag.errorText.contains("unknown option --bogus"))
        let badPattern = await runGoReplay(["report", "--endpoint-pattern", "nope", "x.gor"])
        #expect(badPattern.status == 2 && badPattern.errorText.contains("must start with /"))
        let badWindow = await runGoReplay(["report", "--pending-window=0", "x.gor"])
        #expect(badWindow.status == 2 && badWindow.errorText.contains("--pending-window"))
        let missing = await runGoReplay(["report", "/nonexistent/capture.gor"])
        #expect(missing.status == 1)
        #expect(missing.errorLines.count == 1)
        #expect(missing.errorText.contains("/nonexistent/capture.gor"))
        let help = await runGoReplay(["report", "--help"])
        #expect(help.status == 0 && help.output.contains("Usage: goreplay report"))
    }
}

@Suite("Report rendering of untrusted input")
struct ReportRenderingTests {
    @Test("markup in a recorded request is escaped in the HTML page")
    func escaping() {
        var builder = ReportBuilder()
        builder.add(requestRecord(1, "GET /x/<script>alert(1)</script>?a=\"b\"&c='d'", timestamp: 1))
        builder.add(responseRecord(.response, 1, status: 200, latencyMilliseconds: 1, timestamp: 1))
        builder.add(responseRecord(.replayedResponse, 1, status: 502, latencyMilliseconds: 1, timestamp: 1))
        let html = builder.finish(files: ["<b>.gor"], skippedRecords: 0).html()
        #expect(!html.contains("<script>alert"))
        #expect(!html.contains("<b>.gor"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("&quot;b&quot;&amp;c=&#39;d&#39;"))
    }

    @Test("a truncated .gor.gz is reported as skipped with its reason, not a crash")
    func truncatedGzip() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cut.gor").path
        try writeGor((0..<200).map { requestRecord($0, "GET /a/\($0)", timestamp: Int64($0)) }, to: path)
        #expect(try runProgram("/bin/gzip", [path]).status == 0)
        let data = try Data(contentsOf: URL(fileURLWithPath: path + ".gz"))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path + ".gz"))
        let run = await runGoReplay(["report", path + ".gz"])
        #expect(run.status == 0 || run.status == 1, "\(run.errorText)")
        #expect(
            run.output.contains("skipped: \(path).gz:") || run.errorText.contains(path + ".gz"),
            "\(run.output)\n\(run.errorText)")
    }
}
