import Foundation
import Testing

/// The HTML report opened in Debian's chromium, headless.
@Suite("Report HTML in a headless browser", .serialized)
struct ReportBrowserTests {
    static let chromium = "/usr/bin/chromium"

    /// Console lines chromium logged while loading `page` (any console
    /// message counts: the report itself logs nothing), and the DOM it built.
    static func load(_ page: String, in directory: URL) throws -> (console: [String], dom: String) {
        let profile = directory.appendingPathComponent("profile-\(UUID().uuidString)").path
        let run = try runProgram(
            chromium,
            [
                "--headless", "--disable-gpu", "--no-sandbox", "--user-data-dir=\(profile)", "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=2000", "--dump-dom", "file://\(page)",
            ], timeoutSeconds: 120)
        guard run.status == 0 else { throw TestFailure("chromium exited \(run.status): \(run.error.suffix(2000))") }
        let console = run.error.split(separator: "\n").map(String.init).filter { $0.contains("CONSOLE") }
        return (console, run.output)
    }

    @Test(
        "the check sees a console error when a page has one",
        .enabled(if: FileManager.default.isExecutableFile(atPath: chromium)))
    func consoleErrorsAreSeen() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let page = directory.appendingPathComponent("broken.html").path
        try "<!DOCTYPE html><html><body><p>x</p><script>missingFunction();</script></body></html>".write(
            toFile: page, atomically: true, encoding: .utf8)
        let loaded = try Self.load(page, in: directory)
        #expect(loaded.console.contains { $0.contains("missingFunction") }, "\(loaded.console)")
    }

    @Test(
        "the report renders with no console errors, the matrix and both charts, and fetches nothing",
        .enabled(if: FileManager.default.isExecutableFile(atPath: chromium)))
    func rendersCleanly() async throws {
        let run = try await ReportEndToEndTests.captureReplayReport()
        defer { try? FileManager.default.removeItem(at: run.directory) }
        let html = try String(contentsOfFile: run.htmlPath, encoding: .utf8)
        // Self-contained: no external references at all.
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("url("))

        let loaded = try Self.load(run.htmlPath, in: run.directory)
        #expect(loaded.console.isEmpty, "console: \(loaded.console)")
        #expect(loaded.dom.contains("id=\"status-matrix\""))
        #expect(loaded.dom.contains("id=\"class-matrix\""))
        #expect(loaded.dom.contains("id=\"chart-original\"") && loaded.dom.contains("id=\"chart-replayed\""))
        #expect(loaded.dom.contains("GET /api/broken/{uuid}"))
        #expect(loaded.dom.contains("<rect"))

        // A screenshot, kept when REPORT_SCREENSHOT names a path (to look at it).
        let screenshot =
            ProcessInfo.processInfo.environment["REPORT_SCREENSHOT"]
            ?? run.directory.appendingPathComponent("report.png").path
        let shot = try runProgram(
            Self.chromium,
            [
                "--headless", "--disable-gpu", "--no-sandbox", "--user-data-dir=\(run.directory.path)/profile-shot",
                "--hide-scrollbars",
                "--window-size=1280,1700", "--screenshot=\(screenshot)", "file://\(run.htmlPath)",
            ])
        #expect(shot.status == 0, "\(shot.error.suffix(2000))")
        let size = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
        #expect(size > 20_000, "screenshot \(size) bytes")
    }
}
