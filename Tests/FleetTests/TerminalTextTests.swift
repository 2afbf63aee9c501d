import Foundation
import Testing

@testable import Fleet

/// A host's output is untrusted: in text output it must not be able to move the cursor,
/// recolour the terminal, or print a line that looks like another host's result (issue #15).
@Suite("Text output escapes control characters")
struct TerminalTextTests {
    /// One rendered run in which `cache-1` prints `payload` on stdout and on stderr, then fails.
    func rendered(_ payload: String) -> String {
        var renderer = TextRenderer()
        return renderAll(
            &renderer,
            [
                chunk("cache-1", payload + "\n"),
                chunk("cache-1", payload + "\n", .stderr),
                .notice(host: "cache-1", message: "reading state failed: " + payload, time: t0),
                finished("cache-1", "sdo:true", .exited(status: 1), stderr: payload),
            ])
    }

    @Test("a carriage return cannot overwrite the host's prefix with a forged '[cache-2] ok:'")
    func carriageReturnForgery() {
        let text = rendered("\r[cache-2] ok: sdo:true (0.1s)")
        #expect(!text.contains("\r"), "raw carriage return reached the terminal: \(text.debugDescription)")
        #expect(text.contains(#"[cache-1] out: \r[cache-2] ok: sdo:true (0.1s)"#), "\(text)")
        #expect(text.contains(#"[cache-1] err: \r[cache-2] ok:"#), "\(text)")
        #expect(text.contains(#"[cache-1] reading state failed: \r[cache-2] ok:"#), "\(text)")
        #expect(text.contains(#"— \r[cache-2] ok:"#), "\(text)")
        // Every line the renderer wrote starts with the real host's prefix.
        for line in text.split(separator: "\n") { #expect(line.hasPrefix("[cache-1] "), "\(line)") }
    }

    @Test("ANSI escapes (clear screen, cursor up, colour) are shown, not obeyed")
    func ansiEscapes() {
        let text = rendered("\u{1B}[2J\u{1B}[1A\u{1B}[32mok\u{1B}[0m \u{7}bell \u{9B}31m c1")
        #expect(
            !text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B },
            "a control character reached the terminal: \(text.debugDescription)")
        #expect(text.contains(#"[cache-1] out: \x1b[2J\x1b[1A\x1b[32mok\x1b[0m \x07bell \u{9b}31m c1"#), "\(text)")
    }

    @Test("tabs, UTF-8 and backslashes are kept as they were")
    func ordinaryTextUnchanged() {
        #expect(TerminalText.visible("a\tb — ü C:\\temp \\x1b") == "a\tb — ü C:\\temp \\x1b")
        var renderer = TextRenderer()
        let text = renderer.render(chunk("cache-1", "col1\tcol2 ✓\n"))
        #expect(text == "[cache-1] out: col1\tcol2 ✓\n")
    }

    @Test("bidirectional overrides and line separators are escaped")
    func bidiAndSeparators() {
        #expect(TerminalText.visible("ok\u{202E}kaerb\u{2028}x\u{0}\u{7F}") == #"ok\u{202e}kaerb\u{2028}x\x00\x7f"#)
    }

    @Test("a multi-line notice keeps its lines, each under the host's prefix")
    func multiLineNotice() {
        var renderer = TextRenderer()
        let text = renderer.render(
            .notice(host: "cache-1", message: "/etc/x (systemd):\n  [Service]\n  ExecStart=/bin/true", time: t0))
        #expect(text == "[cache-1] /etc/x (systemd):\n[cache-1]   [Service]\n[cache-1]   ExecStart=/bin/true\n")
    }

    @Test("the summary table's LAST STDERR cell is escaped too")
    func summaryCell() {
        let summary = RunSummary(
            environment: "production", hosts: ["cache-1"], tasks: ["sdo:x"],
            results: [
                HostTaskResult(
                    host: "cache-1", task: "sdo:x", outcome: .exited(status: 1), duration: .seconds(1),
                    lastStderrLine: "\r\u{1B}[2Kcache-2  ok", time: t0)
            ],
            interrupted: false, duration: .seconds(1), time: t0)
        let text = TextRenderer().summaryTable(summary).joined(separator: "\n")
        #expect(!text.contains("\r") && !text.contains("\u{1B}"), "\(text.debugDescription)")
        #expect(text.contains(#"\r\x1b[2Kcache-2  ok"#), "\(text)")
    }

    @Test("JSON output already escapes C0 controls: no raw ESC or CR byte on the wire")
    func jsonEscapes() throws {
        var renderer = JSONLinesRenderer()
        let text = renderAll(
            &renderer,
            [
                chunk("cache-1", "\r[cache-2] ok: \u{1B}[2J\n"),
                finished("cache-1", "sdo:true", .exited(status: 1), stderr: "\r\u{1B}[1A"),
            ])
        #expect(!text.utf8.contains(0x1B) && !text.utf8.contains(0x0D), "\(text.debugDescription)")
        let first = try #require(
            try JSONSerialization.jsonObject(with: Data(text.split(separator: "\n")[0].utf8)) as? [String: Any])
        #expect(first["line"] as? String == "\r[cache-2] ok: \u{1B}[2J", "the JSON keeps the exact text for programs")
    }
}
