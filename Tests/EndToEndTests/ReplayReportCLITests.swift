import Foundation
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `.gor` records written by hand (this target does not link the replay library): the request,
/// its original response and the replayed one, `latency` in nanoseconds.
private func gorRecords(_ index: Int, path: String, original: Int, replayed: Int) -> String {
    let id = String(format: "%024x", 0xABC000 + index)
    let start = 1_764_000_000_000_000_000 + index * 1_000_000
    let separator = "\n🐵🙈🙉\n"
    return "1 \(id) \(start) 0\nGET \(path) HTTP/1.1\r\nHost: www.gov.uk\r\n\r\n" + separator
        + "2 \(id) \(start) 10000000\nHTTP/1.1 \(original) X\r\nContent-Length: 0\r\n\r\n" + separator
        + "3 \(id) \(start + 20_000_000) 20000000\nHTTP/1.1 \(replayed) X\r\nContent-Length: 0\r\n\r\n" + separator
}

@Suite(
    "replay-report through the govuk-fab binary", .serialized,
    .enabled(if: fleetAvailable, "needs the test fleet and the built binary"))
struct ReplayReportCLITests {
    @Test(
        "text and --json: the fleet's report at the end, every --json line an object, the host without files failed, exit 1"
    )
    func reportFromTheBinary() async throws {
        let fleet = try await onThread {
            try FleetInventory(
                hosts: 2, prefix: "rr",
                extra: """
                    replay:
                      binary_path: /opt/goreplay/bin/goreplay
                      args:
                        gor:
                          capture: "{address}:7999"
                          targets: ["http://127.0.0.1:8099"]
                          extra_args: [--output-http-track-response, --output-file, "/opt/goreplay/log/replayed-%Y%m%d.gor", --output-file-append]
                    """)
        }
        defer { fleet.fleet.stop() }
        // rr-1 recorded 4 requests (3 answered alike, 1 a 503 on staging) in a root-only file; rr-2 nothing.
        let first = try #require(fleet.fleet.host(named: "rr-1"))
        let directory = first.realPath("/opt/goreplay/log")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o700)
        let file = directory + "/replayed-20261202.gor"
        let records =
            (0..<3).map { gorRecords($0, path: "/browse/\($0)", original: 200, replayed: 200) }.joined()
            + gorRecords(3, path: "/search?q=x", original: 200, replayed: 503)
        try records.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        try FileManager.default.createDirectory(
            atPath: try #require(fleet.fleet.host(named: "rr-2")).realPath("/opt/goreplay/log"),
            withIntermediateDirectories: true)
        let output = fleet.directory + "/report.json"

        let text = try await fleet.fab(["all", "replay-report:json=\(output)"])
        #expect(text.status == 1, "\(text)")
        #expect(text.stdout.contains("replay-report: 1 of 2 host(s), 1 file(s)"), "\(text)")
        #expect(
            text.stdout.contains("missing: rr-2: no file matches /opt/goreplay/log/replayed-*.gor on the host"),
            "\(text)")
        #expect(text.stdout.contains("200 → 503: 1"), "\(text)")
        #expect(text.stdout.contains("GET /browse/{n}"), "\(text)")
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output))) as? [String: Any])
        let report = try #require(document["report"] as? [String: Any])
        #expect(report["requests"] as? Int == 4)
        #expect(report["mismatched"] as? Int == 1)
        #expect(document["hosts"] as? [String] == ["rr-1"])

        let json = try await fleet.fab(["all", "replay-report", "--json"])
        #expect(json.status == 1, "\(json)")
        let lines = json.stdout.split(separator: "\n")
        #expect(json.jsonEvents.count == lines.count, "a --json line is not a JSON object:\n\(json.stdout)")
        let notice = json.jsonEvents.first {
            ($0["event"] as? String) == "notice" && (($0["message"] as? String)?.hasPrefix("replay-report:") ?? false)
        }
        #expect((notice?["message"] as? String)?.contains("mismatched 1") == true, "\(json)")
        let failed = json.jsonEvents.first {
            ($0["event"] as? String) == "host_finished" && ($0["host"] as? String) == "rr-2"
        }
        #expect(failed?["outcome"] as? String == "exit")
        #expect(
            (failed?["last_stderr"] as? String)?.contains("no file matches") == true, "\(String(describing: failed))")
        #expect(json.jsonEvents.last?["event"] as? String == "summary")
    }
}
