import Foundation
import Testing

@testable import Fleet

let t0 = Date(timeIntervalSince1970: 1_795_649_400) // 2026-11-25T23:30:00Z

func chunk(_ host: String, _ text: String, _ stream: RemoteStream = .stdout) -> FleetEvent {
    .output(host: host, stream: stream, text: text, time: t0)
}

func finished(
    _ host: String, _ task: String, _ outcome: HostOutcome, stderr: String? = nil,
    seconds: Int64 = 1
) -> FleetEvent {
    .hostFinished(
        HostTaskResult(
            host: host, task: task, outcome: outcome, duration: .seconds(seconds),
            lastStderrLine: stderr, time: t0))
}

func renderAll(_ renderer: inout some FleetEventRenderer, _ events: [FleetEvent]) -> String {
    events.map { renderer.render($0) }.joined()
}

let sampleSummary = RunSummary(
    environment: "production", hosts: ["cache-1", "cache-2", "cache-3"], tasks: ["sdo:rm /x", "app.start:goreplay"],
    results: [
        HostTaskResult(
            host: "cache-1", task: "sdo:rm /x", outcome: .exited(status: 0), duration: .milliseconds(400), time: t0),
        HostTaskResult(
            host: "cache-1", task: "app.start:goreplay", outcome: .exited(status: 0), duration: .seconds(1), time: t0),
        HostTaskResult(
            host: "cache-2", task: "sdo:rm /x", outcome: .exited(status: 1), duration: .milliseconds(300),
            lastStderrLine: "rm: cannot remove '/x': No such file or directory", time: t0),
        HostTaskResult(
            host: "cache-2", task: "app.start:goreplay", outcome: .skipped(reason: "earlier task failed"),
            duration: .zero, time: t0),
        HostTaskResult(
            host: "cache-3", task: "sdo:rm /x", outcome: .connectionFailed("connect timed out after 10s"),
            duration: .seconds(10), time: t0),
    ],
    interrupted: false, duration: .milliseconds(11_200), time: t0)

@Suite("Output line buffering")
struct LineBufferTests {
    @Test func completesLinesAcrossChunksPerHostAndStream() {
        var buffer = OutputLineBuffer()
        #expect(buffer.append(Array("hel".utf8), host: "a", stream: .stdout).isEmpty)
        #expect(buffer.append(Array("oops".utf8), host: "a", stream: .stderr).isEmpty)
        #expect(buffer.append(Array("wor".utf8), host: "b", stream: .stdout).isEmpty)
        #expect(buffer.append(Array("lo\r\nnext\n\nta".utf8), host: "a", stream: .stdout) == ["hello", "next", ""])
        #expect(buffer.append(Array("ld\n".utf8), host: "b", stream: .stdout) == ["world"])
        #expect(buffer.flush(host: "a").map { "\($0.stream):\($0.line)" } == ["stdout:ta", "stderr:oops"])
        #expect(buffer.flush(host: "a").isEmpty)
        #expect(buffer.flushAll().isEmpty)
    }

    @Test func splitUTF8AndLongLines() {
        var buffer = OutputLineBuffer(maximumLineBytes: 8)
        let pound = Array("£\n".utf8) // two-byte character split across chunks
        #expect(buffer.append([pound[0]], host: "a", stream: .stdout).isEmpty)
        #expect(buffer.append(Array(pound[1...]), host: "a", stream: .stdout) == ["£"])
        #expect(buffer.append(Array("0123456789\n".utf8), host: "a", stream: .stdout) == ["01234567", "89"])
        #expect(buffer.append([0xFF, 0x0A], host: "a", stream: .stdout) == ["\u{FFFD}"])
    }
}

@Suite("Text renderer")
struct TextRendererTests {
    @Test func fabricStyleLinesNeverMixHosts() {
        var renderer = TextRenderer()
        let text = renderAll(
            &renderer,
            [
                .runStarted(environment: "production", hosts: ["cache-1", "cache-2"], tasks: ["sdo:rm /x"], time: t0),
                .taskStarted(host: "cache-1", task: "sdo:rm /x", command: "sudo rm /x", time: t0),
                chunk("cache-1", "first half "), chunk("cache-2", "other "), chunk("cache-1", "second half\npartial"),
                chunk("cache-2", "host\n"), chunk("cache-2", "no such file\n", .stderr),
                finished("cache-1", "sdo:rm /x", .exited(status: 0)),
                chunk("cache-2", "tail without newline"),
                finished("cache-2", "sdo:rm /x", .exited(status: 1), stderr: "no such file"),
            ])
        #expect(
            text == """
                production: 2 hosts (cache-1, cache-2)
                tasks: sdo:rm /x
                [cache-1] Executing task 'sdo:rm /x'
                [cache-1] run: sudo rm /x
                [cache-1] out: first half second half
                [cache-2] out: other host
                [cache-2] err: no such file
                [cache-1] out: partial
                [cache-1] ok: sdo:rm /x (1.0s)
                [cache-2] out: tail without newline
                [cache-2] FAILED: sdo:rm /x exit 1 after 1.0s — no such file

                """)
    }

    @Test func summaryTable() {
        var renderer = TextRenderer()
        let text = renderer.render(.summary(sampleSummary))
        #expect(
            text == """

                Summary (production, 11.2s):
                HOST     SDO:RM /X   APP.START:GOREPLAY  EXIT  TIME   LAST STDERR
                cache-1  ok          ok                  0     1.4s
                cache-2  exit 1      skipped             1     300ms  rm: cannot remove '/x': No such file or directory
                cache-3  conn error  -                   -     10.0s  connect timed out after 10s
                3 hosts: 1 ok, 2 failed; exit code 1

                """)
    }

    @Test func summaryFlushesPartialLinesFirstAndNotesInterruption() {
        var renderer = TextRenderer()
        _ = renderer.render(chunk("cache-1", "half"))
        var summary = sampleSummary
        summary.interrupted = true
        let text = renderer.render(.summary(summary))
        #expect(text.hasPrefix("[cache-1] out: half\n"))
        #expect(text.hasSuffix("3 hosts: 1 ok, 2 failed; run interrupted; exit code 130\n"))
    }

    @Test("hosts stopped mid-command by Ctrl-C are 'interrupted' in the text summary, never 'ok' with exit 0")
    func interruptedHostsAreNotOk() {
        let results = ["cache-1", "cache-2", "cache-3"].map {
            HostTaskResult(
                host: $0, task: "do:sleep 30", outcome: .skipped(reason: "interrupted while running"),
                duration: .seconds(2), lastStderrLine: "interrupted while running", time: t0)
        }
        let summary = RunSummary(
            environment: "production", hosts: ["cache-1", "cache-2", "cache-3"], tasks: ["do:sleep 30"],
            results: results, interrupted: true, duration: .seconds(2), time: t0)
        var renderer = TextRenderer()
        let text = renderer.render(.summary(summary))
        #expect(text.hasSuffix("3 hosts: 0 ok, 0 failed, 3 interrupted; run interrupted; exit code 130\n"), "\(text)")
        #expect(text.contains("cache-1  interrupted  -     2.0s"), "\(text)")
        #expect(!text.contains("  0  "), "a stopped host shows exit 0: \(text)")
    }

    @Test("a FAILED line gives a connection failure's reason once")
    func failedLineSaysItsReasonOnce() {
        var renderer = TextRenderer()
        let reason = "oncall@127.0.0.1:2222: connect failed: connection refused"
        let text = renderer.render(finished("cache-3", "do:true", .connectionFailed(reason), stderr: reason))
        #expect(text.components(separatedBy: "connection refused").count == 2, "\(text)")
    }

    @Test func colourOnlyWhenAsked() {
        var plain = TextRenderer()
        var coloured = TextRenderer(colour: true)
        let event = finished("cache-2", "x", .exited(status: 2))
        #expect(!plain.render(event).contains("\u{1B}["))
        let text = coloured.render(event)
        #expect(text.contains("\u{1B}[31mFAILED\u{1B}[0m"))
        #expect(text.contains("\u{1B}[36m[cache-2]\u{1B}[0m"))
    }
}

@Suite("JSON Lines renderer")
struct JSONLinesRendererTests {
    func objects(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try #require(object as? [String: Any])
        }
    }

    @Test func everyEventParsesBackWithStableFields() throws {
        var renderer = JSONLinesRenderer()
        let text = renderAll(
            &renderer,
            [
                .runStarted(environment: "production", hosts: ["cache-1"], tasks: ["sdo:rm /x"], time: t0),
                .taskStarted(host: "cache-1", task: "sdo:rm /x", command: nil, time: t0),
                chunk("cache-1", "a \"quoted\"\tline\u{1}\nhal"), chunk("cache-1", "f"),
                .notice(host: nil, message: "23:00–05:30 Europe/London", time: t0),
                finished("cache-1", "sdo:rm /x", .signalled("TERM"), stderr: "killed"),
                .summary(sampleSummary),
            ])
        #expect(text.hasSuffix("\n"))
        let events = try objects(text)
        #expect(
            events.map { $0["event"] as? String } == [
                "run_started", "task_started", "output", "notice", "output", "host_finished", "summary",
            ])
        #expect(events.allSatisfy { $0["time"] as? String == "2026-11-25T23:30:00.000Z" })
        #expect(events[0]["hosts"] as? [String] == ["cache-1"])
        #expect(events[1]["command"] == nil)
        #expect(events[2]["line"] as? String == "a \"quoted\"\tline\u{1}")
        #expect(events[2]["stream"] as? String == "stdout")
        #expect(events[4]["line"] as? String == "half")
        #expect(events[5]["outcome"] as? String == "signal")
        #expect(events[5]["signal"] as? String == "TERM")
        #expect(events[5]["duration_s"] as? Double == 1)
        #expect(events[5]["last_stderr"] as? String == "killed")
        let summary = events[6]
        #expect(summary["exit_code"] as? Int == 1)
        #expect(summary["exit_name"] as? String == "host_failed")
        #expect(summary["failed_hosts"] as? [String] == ["cache-2", "cache-3"])
        #expect(summary["duration_s"] as? Double == 11.2)
        let results = try #require(summary["results"] as? [[String: Any]])
        #expect(results.map { $0["outcome"] as? String } == ["ok", "ok", "exit", "skipped", "connection_error"])
        #expect(results[2]["exit_status"] as? Int == 1)
        #expect(results[4]["message"] as? String == "connect timed out after 10s")
        // Keys are written sorted, so lines are byte-for-byte stable.
        let firstLine = String(text.split(separator: "\n")[0])
        #expect(
            firstLine
                == #"{"environment":"production","event":"run_started","hosts":["cache-1"],"tasks":["sdo:rm /x"],"time":"2026-11-25T23:30:00.000Z"}"#
        )
    }
}

@Suite("Exit codes")
struct ExitCodeTests {
    @Test func documentedValues() {
        #expect(FleetExitCode.allCases.map(\.rawValue) == [0, 1, 2, 3, 4, 130])
        #expect(
            FleetExitCode.forRun(outcomes: [.exited(status: 0), .skipped(reason: "x")], interrupted: false) == .success)
        #expect(
            FleetExitCode.forRun(outcomes: [.exited(status: 0), .timedOut(after: .seconds(5))], interrupted: false)
                == .hostFailed)
        #expect(FleetExitCode.forRun(outcomes: [.exited(status: 2)], interrupted: true) == .interrupted)
        #expect(sampleSummary.exitCode == .hostFailed)
    }
}
