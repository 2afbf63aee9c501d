import Foundation
import Testing

/// `--output-http-stats` does what GoReplay documents: the HTTP outputs' periodic queue lines need
/// it as well as `--stats`; other outputs' lines need `--stats` only (it was accepted and ignored).
@Suite("goreplay --stats and --output-http-stats")
struct StatsFlagTests {
    static func statsLines(_ run: CommandRun) -> [String] {
        run.errorLines.filter { $0.hasPrefix("goreplay: stats ") }
    }

    @Test func httpLinesNeedOutputHTTPStats() async throws {
        let server = try await TestHTTPServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stats-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let common = [
            "--input-dummy", "x", "--output-http", server.url, "--output-file", directory + "/out.gor",
            "--output-http-stats-ms", "200", "--exit-after", "1500ms",
        ]

        let statsOnly = await runGoReplay(common + ["--stats"])
        let both = await runGoReplay(common + ["--stats", "--output-http-stats"])
        let httpStatsOnly = await runGoReplay(common + ["--output-http-stats"])
        await server.shutdown()

        #expect(statsOnly.status == 0 && both.status == 0 && httpStatsOnly.status == 0)
        let http = "goreplay: stats \(server.url)"
        #expect(!Self.statsLines(statsOnly).isEmpty, "\(statsOnly.errorLines)")
        #expect(
            Self.statsLines(statsOnly).allSatisfy { $0.hasPrefix("goreplay: stats file:") }, "\(statsOnly.errorLines)")
        #expect(Self.statsLines(both).contains { $0.hasPrefix(http) }, "\(both.errorLines)")
        #expect(Self.statsLines(both).contains { $0.hasPrefix("goreplay: stats file:") }, "\(both.errorLines)")
        #expect(Self.statsLines(httpStatsOnly).isEmpty, "\(httpStatsOnly.errorLines)")
        #expect(
            httpStatsOnly.errorLines.contains {
                $0.contains("--output-http-stats prints queue lines only with --stats")
            },
            "\(httpStatsOnly.errorLines)")
    }

    @Test func versionFlag() async {
        for spelling in ["-version", "--version"] {
            let run = await runGoReplay([spelling])
            #expect(run.status == 0)
            #expect(run.outputLines.first?.hasPrefix("goreplay ") == true, "\(run.outputLines)")
        }
    }
}
