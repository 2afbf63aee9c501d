import Foundation
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What the operator reads about a run (issue 11, item 7), through the binary on the real test fleet.
@Suite("Operator messages", .serialized, .enabled(if: fleetAvailable, "needs root, sshd and a built govuk-fab"))
struct OperatorMessageTests {
    @Test("a known_hosts warning is given once per run, not once per host")
    func knownHostsWarningsOncePerRun() async throws {
        let fleet = try await onThread { try FleetInventory(hosts: 3, prefix: "khw") }
        // Two lines libssh2 cannot use, after the fleet's own entries (which still verify every host).
        let path = fleet.fleet.knownHostsPath
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(
            Data(
                "this line is not a known_hosts entry\n@cert-authority * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n"
                    .utf8))
        try handle.close()
        let result = try await fleet.fab(["all", "do:true"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.components(separatedBy: "] ok: do:true").count - 1 == 3, "\(result)")
        for warning in ["skipping malformed known_hosts line", "@cert-authority"] {
            let count = result.stderr.components(separatedBy: warning).count - 1
            #expect(count == 1, "'\(warning)' said \(count) times for 3 hosts:\n\(result.stderr)")
        }
    }

    @Test("an identity file that is not there, with no agent, stops the run before any host is contacted")
    func missingIdentityFileStopsBeforeConnecting() async throws {
        let fleet = try await onThread { try FleetInventory(hosts: 2, prefix: "nokey") }
        func sshdLogBytes() -> Int {
            fleet.fleet.hosts.reduce(0) {
                $0 + ((try? Data(contentsOf: URL(fileURLWithPath: $1.sshdLogPath)))?.count ?? 0)
            }
        }
        let path = fleet.directory + "/nokey.yml"
        let missing = fleet.directory + "/no-such-key"
        let yaml = try String(contentsOfFile: fleet.inventoryPath, encoding: .utf8)
            .replacingOccurrences(
                of: "identity_files: [\(fleet.fleet.clientKeyPath)]", with: "identity_files: [\(missing)]")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let before = sshdLogBytes()
        let result = try await CLI.run(
            ["--inventory", path, "--ssh-config-path", "none", "testfleet", "all", "do:true"],
            environment: ["XDG_STATE_HOME": fleet.directory + "/state"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("no key to log in with: identity file \(missing)"), "\(result.stderr)")
        #expect(!result.stderr.contains("authorized_keys"), "\(result.stderr)")
        #expect(sshdLogBytes() == before, "a host was contacted")

        // With the fleet's key given as well, the missing one is a warning and every host logs in.
        let both = try await CLI.run(
            [
                "--inventory", path, "--ssh-config-path", "none", "-i", fleet.fleet.clientKeyPath,
                "testfleet", "all", "do:true",
            ],
            environment: ["XDG_STATE_HOME": fleet.directory + "/state"])
        #expect(both.status == 0, "\(both)")
        #expect(both.stderr.contains("identity file \(missing): no readable key there"), "\(both.stderr)")
    }

    @Test("a timed-out sdo states the configured timeout, in text and in JSON, not the wall time")
    func timeoutStatesTheLimit() async throws {
        let fleet = try await onThread { try FleetInventory(hosts: 1, prefix: "tmo") }
        // The command ignores SIGTERM, so it is stopped by the SIGKILL 2 s later: wall time twice the limit.
        let text = try await fleet.fab(["all", "sdo:trap '' TERM; sleep 3201", "--command-timeout", "2"])
        #expect(text.status != 0, "\(text)")
        // Every duration the host's lines give for the timeout is the limit; the wall time (limit, kill
        // grace, connecting) appears only as the FAILED line's "after".
        let lines = text.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("[tmo-1]") }
        let failed = try #require(lines.first { $0.contains("FAILED") }, "\(text)")
        #expect(failed.contains("timeout 2.0s"), "\(failed)")
        for line in lines where line.contains("timed out") || line.contains("timeout") {
            let reason =
                line.contains("FAILED")
                ? line.range(of: " — ").map { String(line[$0.upperBound...]) } ?? "" : line
            for seconds in durations(in: reason) {
                #expect(seconds == "2.0s", "'\(line)' gives \(seconds), not the 2.0s limit")
            }
        }
        let json = try await fleet.fab(["all", "sdo:trap '' TERM; sleep 3202", "--command-timeout", "2", "--json"])
        let finished = try #require(json.jsonEvents.first { $0["event"] as? String == "host_finished" }, "\(json)")
        #expect(finished["outcome"] as? String == "timeout", "\(finished)")
        #expect(finished["timeout_s"] as? Double == 2.0, "\(finished)")
        if let message = finished["last_stderr"] as? String {
            for seconds in durations(in: message) { #expect(seconds == "2.0s", "last_stderr: \(message)") }
        }
    }

    @Test("Ctrl-C twice in quick succession (the second exits at once) still closes the run's audit record")
    func secondInterruptIsAudited() async throws {
        let fleet = try await onThread { try FleetInventory(hosts: 2, prefix: "int") }
        let state = fleet.directory + "/state-twice"
        let audit = state + "/govuk-fab/audit.jsonl"
        let status = try await onThread { () throws -> Int32 in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: GovukFabBinary.path)
            process.arguments = ["--inventory", fleet.inventoryPath, "testfleet", "all", "do:sleep 3401"]
            var environment = ProcessInfo.processInfo.environment
            environment["XDG_STATE_HOME"] = state
            environment["SSH_AUTH_SOCK"] = ""
            process.environment = environment
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            try process.run()
            // Both commands running, then two Ctrl-Cs 20 ms apart.
            let deadline = ContinuousClock.now + .seconds(60)
            while process.isRunning && ContinuousClock.now < deadline
                && (try? fleet.processCount("'^sleep 3401'", on: fleet.names[0])) ?? 0 == 0
            {
                usleep(100_000)
            }
            kill(process.processIdentifier, SIGINT)
            usleep(20_000)
            kill(process.processIdentifier, SIGINT)
            let stop = ContinuousClock.now + .seconds(30)
            while process.isRunning && ContinuousClock.now < stop { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 130)
        let events = ((try? String(contentsOfFile: audit, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        // "abandoned" when the second Ctrl-C won the race with the run's end, else "finished": never nothing.
        #expect(events.map { $0["event"] as? String }.first == "started", "\(events)")
        #expect(events.count == 2, "\(events)")
        let closing = events.last ?? [:]
        #expect(["abandoned", "finished"].contains(closing["event"] as? String ?? ""), "\(closing)")
        #expect(closing["interrupted"] as? Bool == true, "\(closing)")
    }

    /// Durations written as DurationText does ("2.0s", "4.3s").
    func durations(in text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: "\\b[0-9]+\\.[0-9]+s\\b")
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range, in: text).map { String(text[$0]) }
        }
    }
}
