import Foundation
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// scripts/demo.sh (what `make demo` runs after its release build), here with the test build's
/// binaries: the story end to end with the production-shaped login, and nothing of the demo left
/// running when it returns, whether it finished or was stopped.
extension DeployingTheDemo {
    @Suite(
        "make demo's script", .serialized,
        .enabled(if: fleetAvailable && GoReplayBinary.exists, "needs root, sshd and built binaries"))
    struct DemoScriptTests {
        static let script = GovukFabBinary.repositoryRoot + "/scripts/demo.sh"
        static let state = GovukFabBinary.repositoryRoot + "/demo-state"

        /// Starts the demo with the binaries next to the test bundle; stdout and stderr go to one file.
        func start(_ arguments: [String] = []) throws -> (process: Process, log: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.script)
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment["GOVUK_FAB_BIN"] = URL(fileURLWithPath: GovukFabBinary.path).deletingLastPathComponent().path
            environment["SSH_AUTH_SOCK"] = ""
            process.environment = environment
            let log = "/tmp/govuk-fab-demo-test.\(getpid()).\(UInt32.random(in: 0...UInt32.max)).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            try process.run()
            return (process, log)
        }

        /// Waits at most `limit` for the process; kills it (and records a hang) past that.
        func finish(_ process: Process, within limit: Duration) {
            let deadline = ContinuousClock.now + limit
            while process.isRunning && ContinuousClock.now < deadline { usleep(100_000) }
            if process.isRunning {
                Issue.record("demo.sh still running after \(limit)")
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }

        /// The demo's processes still alive, checked at once: its sshd hosts, their apps, the staging server.
        func leftovers() throws -> String {
            let result = try shellOutput("pgrep -a -f '[d]emo-state/|[d]emo-http.py' || true")
            return result.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The command's stdout, through a file rather than a pipe: a child another test spawns at the
        /// same moment can inherit a pipe's write end, and reading to its end then waits for that child
        /// (here the whole demo, so the login poll saw nothing).
        func shellOutput(_ command: String) throws -> String {
            let path = "/tmp/govuk-fab-demo-test-out.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
            defer { unlink(path) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "exec >\"$1\"; " + command, "sh", path]
            try process.run()
            process.waitUntilExit()
            return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        }

        @Test("the demo tells its story as the non-root oncall login with sudo, and returns with nothing of it running")
        func wholeStory() async throws {
            let (process, log) = try start()
            defer { unlink(log) }
            // Reads the inventory's login while the fleet is up: the hosts' sshd logs say who logged in.
            let logins = try await onThread {
                var logins = ""
                let deadline = ContinuousClock.now + .seconds(600)
                while process.isRunning && ContinuousClock.now < deadline {
                    let seen = try shellOutput(
                        "cat \(Self.state)/run/hosts/*/sshd.log* 2>/dev/null | grep -o 'Accepted publickey for [a-z]*' | sort -u"
                    )
                    if !seen.isEmpty { logins = seen }
                    usleep(500_000)
                }
                finish(process, within: .seconds(5))
                return logins
            }
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let left = try leftovers()
            #expect(process.terminationStatus == 0, "\(output)")
            #expect(left.isEmpty, "still running when demo.sh returned:\n\(left)")
            #expect(logins.contains("Accepted publickey for oncall"), "logins seen: \(logins)")
            #expect(!logins.contains("for root"), "the demo logged in as root: \(logins)")
            // The story's turning points.
            #expect(output.contains("PROCS CRITICAL"), "\(output)")
            #expect(output.contains("refused: inside the data-sync window"), "\(output)")
            let statuses = output.components(separatedBy: "(exit status ").dropFirst().map {
                $0.prefix(while: \.isNumber)
            }
            #expect(statuses == ["0", "0", "0", "0", "0", "0", "2", "3", "0", "0", "0", "0"], "\(output)")
            #expect(output.contains("\"OPTIONS\""), "\(output)")
        }

        @Test("a demo stopped half-way (SIGTERM, as Ctrl-C of make) stops everything it started before it exits")
        func interruptedDemoCleansUp() async throws {
            let (process, log) = try start()
            defer { unlink(log) }
            try await onThread {
                // Stop it once its fleet, apps and staging server are up.
                let deadline = ContinuousClock.now + .seconds(300)
                while process.isRunning && ContinuousClock.now < deadline
                    && !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("== 3.")
                {
                    usleep(100_000)
                }
                kill(process.processIdentifier, SIGTERM)
                finish(process, within: .seconds(60))
            }
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(output.contains("== 3."), "the demo never got going:\n\(output)")
            let left = try leftovers()
            #expect(left.isEmpty, "still running after demo.sh exited:\n\(left)")
            if !left.isEmpty { _ = try? shellOutput("\(Self.script) down") }
        }
    }
}
