import Fleet
import FleetTasks
import Foundation
import Synchronization
import Testing

@testable import GovukFabCLI

@Suite("deploy-goreplay's binary is located by the CLI")
struct ReplayBinaryLocatorTests {
    static func file(_ content: String, in directory: String, named name: String) throws -> String {
        let path = directory + "/" + name
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try content.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    @Test(
        "binary=PATH beats $GOVUK_FAB_GOREPLAY_BINARY, which beats the checkout's build; a present build is not rebuilt"
    )
    func order() throws {
        let directory = try Pipeline.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let explicit = try Self.file("explicit", in: directory, named: "explicit")
        let variable = try Self.file("variable", in: directory, named: "variable")
        let built = try Self.file("built", in: directory, named: "checkout/.build/release/goreplay")
        let announced = Mutex<[String]>([])
        var locator = ReplayBinaryLocator(
            variables: ["GOVUK_FAB_GOREPLAY_BINARY": variable], checkoutRoot: directory + "/checkout",
            announce: { line in announced.withLock { $0.append(line) } })
        #expect(try locator.locate(explicit: explicit).path == explicit)
        #expect(try locator.locate(explicit: nil).path == variable)
        locator.variables = [:]
        let binary = try locator.locate(explicit: nil)
        #expect(binary.path == built && binary.size == 5)
        // sha256 of "built", as sha256sum prints it.
        #expect(binary.sha256 == "586a866f990ab55e36decfffc2011f172e4452d5141c939a5436baffba11111d")
        #expect(announced.withLock { $0 }.isEmpty, "nothing was built")
    }

    @Test("no binary and no checkout: a refusal naming binary=PATH, before any host is touched")
    func nothingToUpload() throws {
        let locator = ReplayBinaryLocator(variables: [:], checkoutRoot: nil, announce: { _ in })
        #expect {
            try locator.locate(explicit: nil)
        } throws: { error in
            (error as? DeployError)?.remedy == "pass deploy-goreplay:binary=PATH"
        }
    }

    @Test("the task gets the binary the CLI located, and without one it refuses rather than build")
    func provided() throws {
        let directory = try Pipeline.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try Self.file("bin", in: directory, named: "goreplay")
        let registry = try TaskRegistry.standard(playbookDirectories: [])
        let task = try registry.makeTask(
            TaskInvocation(name: "deploy-goreplay", raw: "deploy-goreplay"), inventory: Inventory(name: "t"))
        let sources = ReplayBinarySource.sources(in: [PlannedTask(task: task, hosts: [])])
        #expect(sources.count == 1 && sources.first?.task == "deploy-goreplay")
        let source = try #require(sources.first?.source)
        #expect(!source.isResolved)
        #expect(throws: DeployError.self) { try source.resolve() }
        source.provide(try ReplayBinary.load(path: path))
        #expect(try source.resolve().path == path)
    }
}
