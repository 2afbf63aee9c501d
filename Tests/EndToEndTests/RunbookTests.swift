import Foundation
import Testing

/// The runbook's Fabric command line, run by the real binary against real
/// sshd hosts with per-host files and processes.
@Suite("govuk-fab end to end", .enabled(if: fleetAvailable, "needs root, sshd and a built govuk-fab"))
struct RunbookTests {
    /// The exact command line from the GoReplay alert runbook removes the
    /// marker on every host and starts the service, including a host whose
    /// service has the legacy upstart name `gor`.
    @Test func runbookCommandLineRecoversEveryHost() async throws {
        let fleet = try FleetInventory(hosts: 3)
        for name in fleet.names {
            try fleet.installGoReplayService(on: name, service: name == "gor-3" ? "gor" : "goreplay")
            try fleet.setMarker(on: name, "true\n")
        }
        let result = try await fleet.fab([
            "puppet_class:gor", "sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress", "app.start:goreplay",
        ])
        #expect(result.status == 0, "\(result)")
        for name in fleet.names {
            #expect(try !fleet.markerExists(on: name), "\(name) still has the marker")
            #expect(try fleet.goreplayRunning(on: name), "\(name) has no goreplay process")
        }
        #expect(result.stdout.contains("[gor-1] Executing task 'sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress'"))
    }

    /// Where `rm` finds no marker, that host fails alone: Fabric aborted the
    /// whole run there. The failed host gets no later task; the others do.
    @Test func hostWithoutMarkerFailsAloneAndOthersGoOn() async throws {
        let fleet = try FleetInventory(hosts: 3)
        for name in fleet.names { try fleet.installGoReplayService(on: name) }
        try fleet.setMarker(on: "gor-1", "true")
        try fleet.setMarker(on: "gor-3", "true")
        let result = try await fleet.fab([
            "puppet_class:gor", "sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress", "app.start:goreplay",
        ])
        #expect(result.status == 1, "\(result)")
        #expect(try fleet.goreplayRunning(on: "gor-1"))
        #expect(try fleet.goreplayRunning(on: "gor-3"))
        #expect(try !fleet.goreplayRunning(on: "gor-2"), "gor-2 failed the rm and must not get app.start")
        #expect(result.stdout.contains("No such file or directory"), "the summary shows the failing host's stderr")
        let summary = result.stdout.split(separator: "\n").filter { $0.hasPrefix("gor-2") }
        #expect(summary.contains { $0.contains("skipped") || $0.contains("exit 1") }, "\(result.stdout)")
    }

    /// `--warn-only` keeps a failed host in; `--abort-on-failure` starts nothing after the first failure.
    @Test func failurePolicies() async throws {
        let fleet = try FleetInventory(hosts: 3)
        let failOnTwo = "do:test \"$(hostname)\" != gor-2"
        let warn = try await fleet.fab(["all", failOnTwo, "do:echo second-$(hostname)", "--warn-only"])
        #expect(warn.status == 1)
        #expect(warn.stdout.contains("[gor-2] out: second-gor-2"), "\(warn)")

        let abort = try await fleet.fab([
            "all", failOnTwo, "do:echo second-$(hostname)", "--abort-on-failure", "--serial",
        ])
        #expect(abort.status == 1)
        #expect(!abort.stdout.contains("out: second-"), "no task starts after the failure: \(abort)")
        #expect(!abort.stdout.contains("[gor-3] Executing"), "gor-3 was not started: \(abort)")
    }

    /// Exit status and signal of each host, and output lines never mixed between hosts.
    @Test func outputPerHostAndExitSignals() async throws {
        let fleet = try FleetInventory(hosts: 3)
        let result = try await fleet.fab([
            "all",
            "do:for i in 1 2 3 4 5; do echo line-$i-$(hostname); done; test $(hostname) != gor-3 || kill -TERM $$",
        ])
        #expect(result.status == 1, "\(result)")
        for name in ["gor-1", "gor-2", "gor-3"] {
            for i in 1...5 {
                #expect(result.stdout.contains("[\(name)] out: line-\(i)-\(name)\n"), "\(name) line \(i)")
            }
        }
        let mixed = result.stdout.split(separator: "\n").filter { $0.hasPrefix("[gor-1] out:") && $0.contains("gor-2") }
        #expect(mixed.isEmpty)
        #expect(result.stdout.contains("signal TERM"), "\(result.stdout)")
    }

    /// `--json` gives one event per line that scripts can parse.
    @Test func jsonEvents() async throws {
        let fleet = try FleetInventory(hosts: 2)
        let result = try await fleet.fab(["all", "do:echo hello", "--json"])
        #expect(result.status == 0, "\(result)")
        let events = result.jsonEvents
        #expect(events.count == result.stdout.split(separator: "\n").count, "every line is JSON")
        let kinds = events.compactMap { $0["event"] as? String }
        #expect(kinds.first == "run_started" || kinds.first == "runStarted" || kinds.contains { $0.contains("start") })
        #expect(kinds.last?.contains("summary") == true, "\(kinds)")
        let outputs = events.filter { ($0["event"] as? String)?.contains("output") == true }
        #expect(outputs.count == 2)
    }

    /// `--dry-run` prints hosts and exact commands and connects to nothing:
    /// it succeeds even with every host down.
    @Test func dryRunConnectsToNothing() async throws {
        let fleet = try FleetInventory(hosts: 2)
        for name in fleet.names { try fleet.fleet.stopHost(name) }
        let result = try await fleet.fab(["puppet_class:gor", "sdo:rm /etc/x", "app.start:goreplay", "--dry-run"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("rm /etc/x"))
        #expect(result.stdout.contains("would run"), "\(result.stdout)")
    }

    /// A changing task in an environment that needs confirmation is refused
    /// without a terminal (exit 3) and runs with --yes; read-only tasks never ask.
    @Test func confirmationWithoutTerminal() async throws {
        let fleet = try FleetInventory(hosts: 2, confirmChanges: true)
        for name in fleet.names { try fleet.installGoReplayService(on: name) }
        let refused = try await fleet.fab(["all", "app.start:goreplay"])
        #expect(refused.status == 3, "\(refused)")
        #expect(refused.stderr.contains("--yes"))
        #expect(try !fleet.goreplayRunning(on: "gor-1"))
        let status = try await fleet.fab(["all", "app.status:goreplay"])
        #expect(status.status == 0, "app.status is read-only and never asks: \(status)")
        #expect(status.stdout.contains("not running"), "\(status.stdout)")
        let yes = try await fleet.fab(["all", "app.start:goreplay", "--yes"])
        #expect(yes.status == 0, "\(yes)")
        #expect(try fleet.goreplayRunning(on: "gor-1"))
    }

    /// An unreachable host is reported, the others are not hidden.
    @Test func unreachableHostDoesNotHideOthers() async throws {
        let fleet = try FleetInventory(hosts: 3)
        try fleet.fleet.stopHost("gor-2")
        let result = try await fleet.fab(["all", "do:echo up-$(hostname)"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("[gor-1] out: up-gor-1"))
        #expect(result.stdout.contains("[gor-3] out: up-gor-3"))
        #expect(result.stdout.contains("conn"), "\(result.stdout)")
    }

    /// Ctrl-C stops the run, kills the remote commands, reports, writes the audit record, exits 130.
    @Test func interruptStopsRemoteCommands() async throws {
        let fleet = try FleetInventory(hosts: 2)
        let result = try await fleet.fab(["all", "do:sleep 47"], interruptAfter: .milliseconds(2500))
        #expect(result.status == 130, "\(result)")
        // The command dies at once on SIGTERM; the remote watcher (whose argv carries the command
        // text) lingers for its 2 s SIGKILL grace, so allow 5 s for nothing at all to match.
        for name in fleet.names {
            var count = -1
            let deadline = ContinuousClock.now + .seconds(5)
            repeat {
                count = try fleet.processCount("'[s]leep 47'", on: name)
                if count > 0 { try await Task.sleep(for: .milliseconds(200)) }
            } while count > 0 && ContinuousClock.now < deadline
            #expect(count == 0, "\(name) still runs sleep")
        }
        let audit = fleet.auditLines
        #expect(audit.count == 2)
        #expect(audit.first?.contains("\"event\":\"started\"") == true, "\(audit)")
        #expect(audit.last?.contains("\"interrupted\":true") == true, "\(audit)")
    }

    /// Selectors: puppet class case-insensitively, node class, -H, unions without duplicates.
    @Test func selectorsAndHostsTask() async throws {
        let fleet = try FleetInventory(hosts: 3)
        let byClass = try await fleet.fab(["puppet_class:GOR", "hosts"])
        #expect(byClass.status == 0)
        #expect(byClass.stdout.split(separator: "\n") == ["gor-1", "gor-2", "gor-3"], "\(byClass)")
        let nodeClass = try await fleet.fab(["class:cache", "hosts"])
        #expect(nodeClass.stdout.split(separator: "\n") == ["gor-1"], "\(nodeClass)")
        let union = try await fleet.fab(["class:cache", "puppet_class:govuk::node::s_backend", "hosts", "-H", "gor-1"])
        #expect(union.stdout.split(separator: "\n") == ["gor-1", "gor-2", "gor-3"], "\(union)")
    }
}
