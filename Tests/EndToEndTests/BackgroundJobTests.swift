import Foundation
import TestFleet
import Testing

/// `do:'cmd &'` as Fabric 1 users expect it (docs/fabric-compat.md, "Background jobs"): the task ends
/// when the shell does, its background jobs end with it, and only a job detached with its output
/// redirected keeps running. On the real test fleet, logged in as the non-root `oncall` (sdo as root).
/// Each run has a 60 s command timeout: a run that waits for its background job takes that long, so
/// the time bound fails before the fix.
@Suite(
    "Background jobs end with their task", .serialized,
    .enabled(if: fleetAvailable, "needs root, sshd and a built govuk-fab"))
struct BackgroundJobTests {
    /// Runs `task` on the fleet's one host and returns the result and how long the run took.
    func run(_ task: String, on fleet: FleetInventory) async throws -> (result: CommandRunResult, took: Duration) {
        let started = ContinuousClock.now
        let result = try await fleet.fab(["all", task])
        return (result, ContinuousClock.now - started)
    }

    /// Processes on the host whose command line is exactly `sleep SECONDS`; with `settle`, waiting
    /// (bounded) for any still exiting to go.
    func sleeps(_ seconds: Int, on fleet: FleetInventory, settle: Bool = true) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(settle ? 10 : 0)
        while true {
            let found = try await onThread {
                try fleet.fleet.run(on: fleet.names[0], "pgrep -a -x -f 'sleep \(seconds)' || true").output
            }.trimmingCharacters(in: .whitespacesAndNewlines)
            if found.isEmpty || ContinuousClock.now >= deadline { return found }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// A run takes 1-2 s on an idle machine (connect, command); 25 s is far below the 60 s command
    /// timeout a run waiting for its job would need.
    static let prompt: Duration = .seconds(25)

    @Test(
        "do:'cmd &' and sdo:'cmd &' return when the shell exits and leave nothing behind, nohup without redirection included"
    )
    func backgroundJobsEnd() async throws {
        let fleet = try await onThread { try FleetInventory(hosts: 1, prefix: "bg") }
        // The short sleep lets nohup ignore SIGHUP before the shell exits, as in a real script.
        let cases = [
            (3101, "do:sleep 3101 &"), (3102, "sdo:sleep 3102 &"),
            (3103, "do:nohup sleep 3103 & sleep 0.5; echo started"),
            (3104, "sdo:nohup sleep 3104 & sleep 0.5; echo started"),
            (3108, "do:sleep 3108 & exit 0"),
        ]
        for (seconds, task) in cases {
            let (result, took) = try await run(task, on: fleet)
            #expect(result.status == 0, "\(task): \(result)")
            #expect(took < Self.prompt, "\(task) took \(took): the run waited for its background job")
            if task.contains("echo started") { #expect(result.stdout.contains("out: started"), "\(result)") }
            let left = try await sleeps(seconds, on: fleet)
            #expect(left.isEmpty, "\(task) left running: \(left)")
        }
    }

    @Test("an interrupted run also stops a setsid child that still holds the command's output")
    func interruptedRunStopsEscapedHolders() async throws {
        let fleet = try await onThread { try FleetInventory(hosts: 1, prefix: "bgi") }
        for (seconds, verb) in [(3111, "do"), (3112, "sdo")] {
            // The marker proves the command had started before the interrupt; without it the test
            // could pass because nothing ever ran.
            let marker = "/tmp/govuk-fab-interrupt-\(seconds)"
            _ = try await onThread { try fleet.fleet.run(on: fleet.names[0], "rm -f \(marker)") }
            let task = "\(verb):setsid sleep \(seconds) & touch \(marker); sleep 300"
            let result = try await fleet.fab(["all", task], interruptAfter: .seconds(6))
            #expect(result.status == 130, "\(task): \(result)")
            let started = try await onThread {
                try fleet.fleet.run(on: fleet.names[0], "test -e \(marker) && echo started || echo not").output
            }
            #expect(started.contains("started"), "\(task): interrupted before the command started")
            let left = try await sleeps(seconds, on: fleet)
            #expect(left.isEmpty, "\(task) left running after the interrupt: \(left)")
        }
    }

    @Test("a job detached with nohup or setsid and its output redirected keeps running")
    func detachedJobsSurvive() async throws {
        let fleet = try await onThread { try FleetInventory(hosts: 1, prefix: "bgd") }
        let cases = [
            (3105, "do:nohup sleep 3105 >/dev/null 2>&1 </dev/null &"),
            (3106, "do:setsid sleep 3106 >/dev/null 2>&1 </dev/null &"),
            (3107, "sdo:nohup sleep 3107 >/dev/null 2>&1 </dev/null &"),
        ]
        for (_, task) in cases {
            let (result, took) = try await run(task, on: fleet)
            #expect(result.status == 0, "\(task): \(result)")
            #expect(took < Self.prompt, "\(task) took \(took)")
        }
        // Give the watchers time to do their worst (they stop holders of the output within about 3 s).
        try await Task.sleep(for: .seconds(4))
        for (seconds, task) in cases {
            let left = try await sleeps(seconds, on: fleet, settle: false)
            #expect(!left.isEmpty, "\(task): the detached job was stopped")
        }
    }
}
