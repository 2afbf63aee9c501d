import Foundation
import GoReplayCLI
import Replay
import Testing

/// Issue 13 item 6: each case is what GoReplay's source does (1.3.x
/// `http_modifier.go`, `proto.SetHeader`, `output_file.go`, Go's
/// `regexp.Expand`, 0.16 `settings.go`).
@Suite("GoReplay semantics", .serialized)
struct GoReplaySemanticsTests {
    private func modifier(_ flags: [String]) throws -> HTTPModifier {
        guard case .run(let options) = try GoFlagParser.parse(["--input-file", "a", "--output-null"] + flags) else {
            throw UsageError.missingInputOrOutput
        }
        return HTTPModifier(options.modifier)
    }

    private func apply(_ flags: [String], _ payload: String) throws -> String? {
        try modifier(flags).apply(to: request(payload)).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("a proxy-style absolute target is sent to the target in origin form")
    func absoluteForm() async throws {
        let server = try await TestHTTPServer()
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("proxy.gor")
        try writeGor(
            [
                requestMessage(0, request("GET http://www.gov.uk/browse?x=1 HTTP/1.1\nHost: www.gov.uk")),
                requestMessage(1, request("GET HTTPS://www.gov.uk HTTP/1.1\nHost: www.gov.uk")),
            ], to: path)
        let run = await runGoReplay([
            "--input-file", path.path, "--output-http", server.url, "--output-http-workers", "1",
        ])
        await server.shutdown()
        #expect(run.status == 0)
        #expect(
            server.requestTexts == [
                "GET /browse?x=1 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n\r\n",
            ])
    }

    @Test("--output-dummy takes a value, as in 0.16, and writes to stdout")
    func outputDummyValue() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("in.gor")
        try writeGor([requestMessage(0, request("GET /dummy HTTP/1.1\nHost: a"))], to: path)
        let run = await runGoReplay(["--input-file", path.path, "--output-dummy", "0"])
        #expect(run.status == 0, "\(run.errorText)")
        // The stdout output writes to the process's descriptor 1, not the
        // captured lines; its count shows it got the record.
        #expect(run.errorText.contains("output stdout: sent 1"), "\(run.errorText)")
    }

    @Test("%NS in a file name is the nanosecond within the second (Go's Time.Nanosecond)")
    func nanosecondToken() {
        let output = FileOutput(
            template: "/tmp/x-%NS.gor", options: FileOutputOptions(), statistics: ReplayStatistics())
        let message = requestMessage(0, [])
        #expect(output.renderName(for: message, now: 1_700_000_000_123_456_789) == "/tmp/x-123456789.gor")
        #expect(output.renderName(for: message, now: 1_700_000_000_000_000_042) == "/tmp/x-42.gor")
    }

    @Test("--http-rewrite-url expands Go's ${1}, $1, ${name} and $$")
    func goTemplates() throws {
        let line = "GET /v1/user/42/ping HTTP/1.1\nHost: a"
        #expect(
            try apply(["--http-rewrite-url", "/v1/user/([0-9]+)/ping:/v2/${1}x"], line)?.hasPrefix(
                "GET /v2/42x HTTP/1.1") == true)
        #expect(
            try apply(["--http-rewrite-url", "/v1/user/([0-9]+)/ping:/v2/$1"], line)?.hasPrefix("GET /v2/42 HTTP/1.1")
                == true)
        // Go reads `$1x` as the group named "1x", which does not exist.
        #expect(
            try apply(["--http-rewrite-url", "/v1/user/([0-9]+)/ping:/v2/$1x"], line)?.hasPrefix("GET /v2/ HTTP/1.1")
                == true)
        #expect(
            try apply(["--http-rewrite-url", "/v1/user/(?<id>[0-9]+)/ping:/u/${id}/$$"], line)?.hasPrefix(
                "GET /u/42/$ HTTP/1.1") == true)
    }

    @Test("--http-allow-header drops a request whose header is empty or missing, even if the pattern matches empty")
    func emptyHeaderValue() throws {
        let flags = ["--http-allow-header", "X-Env: .*"]
        #expect(try apply(flags, "GET / HTTP/1.1\nHost: a\nX-Env: ") == nil)
        #expect(try apply(flags, "GET / HTTP/1.1\nHost: a") == nil)
        #expect(try apply(flags, "GET / HTTP/1.1\nHost: a\nX-Env: prod") != nil)
    }

    @Test("several --http-basic-auth-filter must all match")
    func basicAuthAll() throws {
        let flags = ["--http-basic-auth-filter", "^customer", "--http-basic-auth-filter", ":secret$"]
        func line(_ credentials: String) -> String {
            "GET / HTTP/1.1\nHost: a\nAuthorization: Basic \(Data(credentials.utf8).base64EncodedString())"
        }
        #expect(try apply(flags, line("customer1:secret")) != nil)
        #expect(try apply(flags, line("customer1:other")) == nil)
        #expect(try apply(flags, line("admin:secret")) == nil)
        // Requests without Basic auth pass, as in GoReplay.
        #expect(try apply(flags, "GET / HTTP/1.1\nHost: a") != nil)
    }

    @Test("--http-set-header on a repeated header changes the first copy only")
    func setHeaderFirstCopy() throws {
        let result = try apply(
            ["--http-set-header", "Cookie: new"], "GET / HTTP/1.1\nHost: a\nCookie: a=1\nCookie: b=2")
        #expect(result == "GET / HTTP/1.1\r\nHost: a\r\nCookie: new\r\nCookie: b=2\r\n\r\n")
    }

    @Test(
        "GoReplay flags that would do nothing here are refused with a reason",
        arguments: [
            (
                ["--input-raw-protocol", "binary"],
                "goreplay: invalid value \"binary\" for flag --input-raw-protocol: only http is replayed; GoReplay's binary protocol mode is not supported here"
            ),
            (
                ["--input-raw-promisc"],
                "goreplay: invalid value \"true\" for flag --input-raw-promisc: promiscuous capture is not supported; capture sees this host's own traffic only"
            ),
            (
                ["--output-http-redirects", "3"],
                "goreplay: invalid value \"3\" for flag --output-http-redirects: following redirects is not supported; redirects are replayed as responses (use 0)"
            ),
        ])
    func refusedFlags(flags: [String], message: String) async {
        let run = await runGoReplay(["--input-file", "a.gor", "--output-null"] + flags)
        #expect(run.status == 2)
        #expect(run.errorLines == [message])
    }
}
