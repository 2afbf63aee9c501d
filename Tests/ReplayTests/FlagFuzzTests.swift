import Foundation
import GoReplayCLI
import Replay
import Testing

/// Every numeric flag value through extremes: each is either used or refused
/// with one line and exit status 2 — never a trap. The flags come from
/// `--help`, so a new numeric flag is covered without touching this test.
@Suite("Flag values at their extremes", .serialized)
struct FlagFuzzTests {
    static let extremes = [
        "99999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "18446744073709551615", "-1", "0", "1", "1.5", "NaN", "nan", "inf", "-inf", "+Inf", "1e308", "-1e308",
        "1e-308", "1e308s", "1e308h", "9999999999999999999h", "2562047h47m16.854775808s", "-5s", "0x7fffffff",
        "1e308kb", "99999999999999999999pb", "٣", "", " ", "1/0", "5%", "\u{0}",
    ]

    /// Flags whose value is numeric (counts, durations, sizes), by their help line.
    private func numericFlags() async -> [String] {
        let help = await runGoReplay(["--help"]).outputLines.joined(separator: "\n")
        var flags: [String] = []
        for line in help.split(separator: "\n") where line.hasPrefix("  --") {
            let words = line.split(separator: " ", maxSplits: 2)
            guard words.count >= 2 else { continue }
            let value = words[1]
            if ["N", "DURATION", "SIZE", "MS"].contains(value) { flags.append(String(words[0].dropFirst(2))) }
        }
        return flags
    }

    /// Values as each kind of flag takes them.
    /// - Parameter addresses: a real address for each address flag (loopback
    ///   server, temporary files), so accepted values run for real.
    private func cases(_ flags: [String], addresses: [String: String]) -> [(flag: String, value: String)] {
        var cases: [(String, String)] = []
        for flag in flags {
            for value in Self.extremes { cases.append((flag, value)) }
        }
        for value in Self.extremes {
            for (flag, address) in addresses {
                cases.append((flag, "\(address)|\(value)"))
                cases.append((flag, "\(address)|\(value)%"))
            }
            for flag in ["http-header-limiter", "output-http-header-hash-filter", "http-param-limiter"] {
                cases.append((flag, "X: \(value)%"))
                cases.append((flag, "X: \(value)/1"))
                cases.append((flag, "X: 1/\(value)"))
            }
            cases.append(("verbose", value))
        }
        cases.append(("output-http-header-hash-filter", "X: 9223372036854775807/1"))
        return cases
    }

    @Test("every numeric flag value is used or refused with one line and exit 2")
    func extremes() async throws {
        let flags = await numericFlags()
        // The issue's three traps are among them.
        for flag in ["input-file-max-wait", "output-file-flush-interval", "output-http-workers", "output-http-timeout"]
        {
            #expect(flags.contains(flag), "no --\(flag) in help")
        }
        let server = try await TestHTTPServer()
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        try writeGor((0..<2).map { requestMessage($0, request("GET /\($0) HTTP/1.1\nHost: a")) }, to: input)
        var refused = 0
        var used = 0
        let addresses = [
            "input-file": input.path, "output-http": server.url,
            "output-file": directory.appendingPathComponent("limited.gor").path,
        ]
        for (flag, value) in cases(flags, addresses: addresses) {
            let fileFlag = flag == "input-file" ? [] : ["--input-file", input.path]
            var arguments =
                fileFlag + [
                    "--output-http", server.url, "--output-file", directory.appendingPathComponent("out.gor").path,
                ]
            arguments += ["--exit-after", "5s", "--\(flag)=\(value)"]
            let parsed = Result { try GoFlagParser.parse(arguments) }
            let run = await runGoReplay(arguments)
            switch parsed {
            case .failure(let error):
                refused += 1
                #expect(run.status == 2, "--\(flag)=\(value): status \(run.status)")
                #expect(run.errorLines == ["goreplay: \(error)"], "--\(flag)=\(value)")
                #expect(!"\(error)".contains("\n"))
            case .success:
                used += 1
                #expect(run.status == 0, "--\(flag)=\(value): status \(run.status) \(run.errorText)")
            }
        }
        await server.shutdown()
        #expect(refused > 0 && used > 0)
    }

    @Test(
        "the issue's crashing values now print one line and exit 2",
        arguments: [
            (
                "--input-file-max-wait=99999999999999999999",
                "goreplay: invalid value \"99999999999999999999\" for flag --input-file-max-wait: expected a duration from 0 to 8760h (one year)"
            ),
            (
                "--output-http-header-hash-filter=X: 9223372036854775807/1",
                "goreplay: invalid value \"X: 9223372036854775807/1\" for flag --output-http-header-hash-filter: malformed rule \"X: 9223372036854775807/1\" (expected Name: N%)"
            ),
            (
                "--output-file-flush-interval=1e308",
                "goreplay: invalid value \"1e308\" for flag --output-file-flush-interval: expected a duration from 0 to 8760h (one year)"
            ),
        ])
    func issueValues(argument: String, message: String) async {
        let run = await runGoReplay(["--input-file", "a.gor", "--output-null", argument])
        #expect(run.status == 2)
        #expect(run.errorLines == [message])
    }
}
