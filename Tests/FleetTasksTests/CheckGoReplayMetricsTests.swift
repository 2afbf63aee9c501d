import Fleet
import Foundation
import TestFleet
import Testing

@testable import FleetTasks

#if canImport(Glibc)
    import Glibc
#endif

/// A loopback stand-in for goreplay's `/metrics` (Python's http.server): each
/// scrape adds 10 to the captured counter, and 10 to replayed unless stuck.
final class FakeGoReplayMetrics: @unchecked Sendable {
    let process = Process()
    let port: Int
    private let script: String

    static let source = """
        import http.server, sys
        stuck = sys.argv[1] == "stuck"
        scrapes = 0
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass
            def do_GET(self):
                global scrapes
                scrapes += 1
                body = ("# TYPE goreplay_requests_captured_total counter\\n"
                        "goreplay_requests_captured_total %d\\n"
                        "# TYPE goreplay_requests_replayed_total counter\\n"
                        "goreplay_requests_replayed_total %d\\n") % (10 * scrapes, 0 if stuck else 10 * scrapes)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """

    init(stuck: Bool) throws {
        script = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).py").path
        try Self.source.write(toFile: script, atomically: true, encoding: .utf8)
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script, stuck ? "stuck" : "replaying"]
        process.standardOutput = output
        try process.run()
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(process.processIdentifier, SIGKILL)
            throw TestFleetError.commandFailed(command: "python3 metrics server", status: -1, output: line)
        }
        self.port = port
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: script)
    }
}

@Suite("check-goreplay with metrics", .serialized)
struct CheckGoReplayMetricsTests {
    @Test("metrics=PORT,interval=S parse; bad values are located errors")
    func parsing() throws {
        let plain = try CheckGoReplayTask.parse(TaskInvocation(name: "check-goreplay"))
        #expect(plain.metrics == nil)
        let probe = try CheckGoReplayTask.parse(
            TaskInvocation(
                name: "check-goreplay", keywords: [TaskKeyword("metrics", "9091"), TaskKeyword("interval", "3")]))
        #expect(probe.metrics == CheckGoReplayTask.MetricsProbe(port: 9091, intervalSeconds: 3))
        #expect(throws: TaskError.self) {
            try CheckGoReplayTask.parse(TaskInvocation(name: "check-goreplay", keywords: [TaskKeyword("metrics", "0")]))
        }
        #expect(throws: TaskError.self) {
            try CheckGoReplayTask.parse(
                TaskInvocation(name: "check-goreplay", keywords: [TaskKeyword("interval", "5")]))
        }
        do {
            _ = try CheckGoReplayTask.parse(
                TaskInvocation(
                    name: "check-goreplay", keywords: [TaskKeyword("metrics", "x")], raw: "check-goreplay:metrics=x"))
            Issue.record("accepted metrics=x")
        } catch {
            #expect(
                "\(error)"
                    == "task 'check-goreplay:metrics=x': 'check-goreplay' option 'metrics=x': expected a port from 1 to 65535 (see 'help:check-goreplay')"
            )
        }
    }

    @Test("untrusted scrape output: only two complete scrapes of finite counters count")
    func scrapeParsing() {
        let good =
            "scrape 1\ngoreplay_requests_captured_total 10\ngoreplay_requests_replayed_total 4\nscrape 2\ngoreplay_requests_captured_total 30\ngoreplay_requests_replayed_total 4\n"
        let parsed = CheckGoReplayTask.parseScrapes(good)
        #expect(parsed?.count == 2)
        let probe = CheckGoReplayTask.MetricsProbe(port: 1, intervalSeconds: 10)
        #expect(CheckGoReplayTask.judge(parsed, probe: probe).0 == .warning)
        #expect(CheckGoReplayTask.parseScrapes("scrape 1\nunavailable\nscrape 2\nunavailable\n") == nil)
        #expect(CheckGoReplayTask.parseScrapes(good.replacingOccurrences(of: "30", with: "nan")) == nil)
        #expect(CheckGoReplayTask.parseScrapes(good.replacingOccurrences(of: "30", with: "-1")) == nil)
        #expect(CheckGoReplayTask.judge(nil, probe: probe).0 == .warning)
    }

    @Test(
        "on real hosts: replaying is OK, captured-but-not-replayed and no metrics are WARNING, no process stays CRITICAL"
    )
    func onHosts() async throws {
        let setup = try GoReplayFleet(hostCount: 3)
        defer { setup.fleet.stop() }
        let replaying = try FakeGoReplayMetrics(stuck: false)
        defer { replaying.stop() }
        let stuck = try FakeGoReplayMetrics(stuck: true)
        defer { stuck.stop() }
        for name in ["gor-1", "gor-2", "gor-3"] {
            try setup.installService(on: name)
            try setup.setMarker(on: name, "")
        }
        try setup.startService(on: "gor-1")
        try setup.startService(on: "gor-2")

        func check(_ name: String, port: Int) async throws -> (CheckStatus?, String) {
            let task = CheckGoReplayTask(metrics: .init(port: port, intervalSeconds: 1))
            let (report, lines) = try await setup.run([task], on: [name])
            return (outcome(report, name)?.checkStatus, lines[name] ?? "")
        }
        let ok = try await check("gor-1", port: replaying.port)
        #expect(ok.0 == .ok, "\(ok.1)")
        #expect(
            ok.1.hasPrefix(
                "PROCS OK: 1 process with command name 'goreplay', 10 replayed, 10 captured in 1s | procs=1;;1:;0;"),
            "\(ok.1)")
        let nothing = try await check("gor-2", port: stuck.port)
        #expect(nothing.0 == .warning, "\(nothing.1)")
        #expect(
            nothing.1.contains(
                "PROCS WARNING: 1 process with command name 'goreplay', running but replaying nothing (10 captured, 0 replayed in 1s)"
            ), "\(nothing.1)")
        // A port where nothing listens: the mirror cannot be watched.
        let closed = try await check("gor-1", port: 1)
        #expect(closed.0 == .warning && closed.1.contains("metrics on 127.0.0.1:1 unavailable"), "\(closed.1)")
        // No process: CRITICAL as before, metrics not consulted.
        let down = try await check("gor-3", port: replaying.port)
        #expect(down.0 == .critical && down.1.hasPrefix("PROCS CRITICAL: 0 processes"), "\(down.1)")
    }
}
