import Foundation
import GoReplayCLI
import Replay
import Testing

@Suite("GoReplay's command line")
struct FlagParserTests {
    private func options(_ arguments: [String]) throws -> GoReplayOptions {
        guard case .run(let options) = try GoFlagParser.parse(arguments) else {
            Issue.record("expected options, got help")
            return GoReplayOptions()
        }
        return options
    }

    @Test("one or two dashes, =value or a separate value, bools without value")
    func spellings() throws {
        let parsed = try options([
            "-input-file", "a.gor", "--input-file=b.gor|200%", "--output-http=http://staging:8080|10",
            "-output-http", "https://x/y?z=1|50%", "--output-http-workers", "7", "-output-http-timeout=2s",
            "--split-output", "--output-stdout=false", "-stats", "--output-http-track-response=true",
        ])
        #expect(
            parsed.inputFiles == [
                LimitedAddress(address: "a.gor"), LimitedAddress(address: "b.gor", limit: .percent(200)),
            ])
        #expect(
            parsed.outputHTTP == [
                LimitedAddress(address: "http://staging:8080", limit: .perSecond(10)),
                LimitedAddress(address: "https://x/y?z=1", limit: .percent(50)),
            ])
        #expect(parsed.http.workers == 7)
        #expect(parsed.http.timeout == .seconds(2))
        #expect(parsed.splitOutput)
        #expect(!parsed.outputStdout)
        #expect(parsed.stats)
        #expect(parsed.http.trackResponses)
    }

    @Test("repeatable filter flags accumulate; 0.16 aliases map to today's flags")
    func repeatableAndAliases() throws {
        let parsed = try options([
            "--http-allow-method", "GET", "--http-allow-method", "HEAD", "--output-http-method", "POST",
            "--http-set-header", "X-A: 1", "--output-http-header", "X-B:", "--output-http-url-regexp", "^/api",
            "--output-dummy", "0", "--input-file", "x.gor",
        ])
        #expect(parsed.modifier.allowMethods == ["GET", "HEAD", "POST"])
        #expect(parsed.modifier.setHeaders.map(\.name) == ["X-A", "X-B"])
        #expect(parsed.modifier.setHeaders.map(\.value) == ["1", ""])
        #expect(parsed.modifier.allowURLs.map(\.source) == ["^/api"])
        #expect(parsed.outputStdout)
    }

    @Test("sizes accept 256m as well as 256mb; durations in Go syntax")
    func sizesAndDurations() throws {
        #expect(try FlagValues.size("256m") == 256 * 1024 * 1024)
        #expect(try FlagValues.size("256MB") == 256 * 1024 * 1024)
        #expect(try FlagValues.size("1g") == 1 << 30)
        #expect(try FlagValues.size("64kb") == 65536)
        #expect(try FlagValues.size("1000") == 1000)
        #expect(throws: (any Error).self) { try FlagValues.size("12parsecs") }
        #expect(try FlagValues.duration("1m30s") == .seconds(90))
        #expect(try FlagValues.duration("250ms") == .milliseconds(250))
        #expect(try FlagValues.duration("1.5s") == .milliseconds(1500))
        #expect(throws: (any Error).self) { try FlagValues.duration("5 minutes") }
        let parsed = try options(["--output-file-size-limit", "256m", "--exit-after", "5s", "--input-file", "a"])
        #expect(parsed.file.sizeLimit == 256 * 1024 * 1024)
        #expect(parsed.exitAfter == .seconds(5))
    }

    @Test("`--split-output true` as GoReplay's docs write it")
    func boolWithSeparateWord() throws {
        let parsed = try options(["--input-file", "a.gor", "--split-output", "true", "--output-null"])
        #expect(parsed.splitOutput)
        #expect(parsed.outputNull)
    }

    @Test("--input-raw flags are parsed and kept for the capture input")
    func rawFlags() throws {
        let parsed = try options([
            "--input-raw", ":8080", "--input-raw", "127.0.0.1:80|50%", "--input-raw-track-response",
            "--input-raw-expire", "500ms", "--input-raw-bpf-filter", "dst port 80", "--input-raw-snaplen", "64kb",
            "--input-raw-buffer-size", "8mb", "--input-raw-override-snaplen", "--input-raw-engine", "raw_socket",
            "--input-raw-realip-header", "X-Real-IP", "--input-raw-allow-incomplete",
        ])
        #expect(
            parsed.raw.addresses == [
                LimitedAddress(address: ":8080"), LimitedAddress(address: "127.0.0.1:80", limit: .percent(50)),
            ])
        #expect(parsed.raw.trackResponse)
        #expect(parsed.raw.expire == .milliseconds(500))
        #expect(parsed.raw.bpfFilter == "dst port 80")
        #expect(parsed.raw.snaplen == 65536)
        #expect(parsed.raw.bufferSize == 8 << 20)
        #expect(parsed.raw.overrideSnaplen)
        #expect(parsed.raw.engine == "raw_socket")
        #expect(parsed.raw.realIPHeader == "X-Real-IP")
        #expect(parsed.raw.allowIncomplete)
    }

    @Test(
        "bad command lines: one clear line, exit status 2",
        arguments: [
            (["--output-htp", "x"], "goreplay: unknown flag --output-htp (did you mean --output-http?)"),
            (["--input-file"], "goreplay: flag needs an argument: --input-file"),
            (
                ["--input-file", "a", "--output-null", "--output-http-workers", "many"],
                "goreplay: invalid value \"many\" for flag --output-http-workers: expected a whole number from 0 to 10000"
            ),
            (
                ["--input-file", "a", "--output-null", "--exit-after", "soon"],
                "goreplay: invalid value \"soon\" for flag --exit-after: expected a duration such as 500ms, 5s or 1m30s"
            ),
            (["--output-null=maybe"], "goreplay: invalid boolean value \"maybe\" for flag --output-null"),
            (["--input-file", "a"], "goreplay: required at least 1 input and 1 output (see --help)"),
            (
                ["--input-file", "a", "--output-null", "--http-allow-url", "("],
                "goreplay: invalid value \"(\" for flag --http-allow-url: invalid regular expression \"(\""
            ),
            (
                ["--input-file", "a", "--output-null", "--http-set-header", "NoColon"],
                "goreplay: invalid value \"NoColon\" for flag --http-set-header: malformed rule \"NoColon\" (expected Name: value)"
            ),
            (
                ["--input-file", "a", "--output-http", "ftp://x"],
                "goreplay: invalid value \"ftp://x\" for flag --output-http: malformed rule \"ftp://x\" (expected an http:// or https:// URL)"
            ),
            (
                ["--input-file", "a", "--output-null", "stray"],
                "goreplay: unexpected argument \"stray\" (flags start with - or --)"
            ),
            (
                ["--input-file", "a.gor|fast", "--output-null"],
                "goreplay: invalid value \"a.gor|fast\" for flag --input-file: expected ADDRESS, ADDRESS|N or ADDRESS|N%"
            ),
        ])
    func badFlags(arguments: [String], message: String) async {
        let run = await runGoReplay(arguments)
        #expect(run.status == 2)
        #expect(run.errorLines == [message])
    }

    @Test("--help documents every flag and exits 0")
    func help() async {
        let run = await runGoReplay(["--help"])
        #expect(run.status == 0)
        let text = run.outputLines.joined(separator: "\n")
        for flag in [
            "input-file", "input-file-loop", "output-http", "output-http-workers", "output-http-timeout", "output-file",
            "output-file-append", "output-file-size-limit", "output-stdout", "output-null", "split-output",
            "http-allow-method", "http-allow-url", "http-disallow-url", "http-allow-header", "http-disallow-header",
            "http-set-header", "http-rewrite-url", "http-original-host", "stats", "output-http-stats", "exit-after",
            "input-raw", "input-raw-track-response",
        ] {
            #expect(text.contains("--\(flag) ") || text.contains("--\(flag)\n"), "help lacks --\(flag)")
        }
    }

    @Test("--input-raw without the capture build is a clear error")
    func rawWithoutCapture() async {
        let run = await runGoReplay(["--input-raw", ":80", "--output-null"])
        #expect(run.status == 1)
        #expect(run.errorLines == ["goreplay: --input-raw needs live capture, which this build does not include"])
    }

    @Test("the built binary: bad flag → one line on stderr, exit 2")
    func binary() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let candidates = ["debug", "release"].map { root.appendingPathComponent(".build/\($0)/goreplay").path }
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            Issue.record("goreplay binary not built (swift build --product goreplay)")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-input-file", "x.gor", "--output-htp", "http://x"]
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: errorPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 2)
        #expect(text == "goreplay: unknown flag --output-htp (did you mean --output-http?)\n")
    }
}
