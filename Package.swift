// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "govuk-fab",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "govuk-fab", targets: ["govuk-fab"]),
        .executable(name: "goreplay", targets: ["goreplay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // gzip for .gor.gz inputs and outputs (over the system zlib).
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        // Prometheus text exposition for goreplay --metrics.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries mandated by the brief.
        .systemLibrary(
            name: "CLibSSH2", pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"])]),
        .systemLibrary(
            name: "CPcap", pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]),
        // <sys/epoll.h>, which Swift's Glibc module does not import (libc, nothing to link).
        .systemLibrary(name: "CEpoll"),

        // govuk-fab: SSH transport, fleet model, tasks, CLI.
        .target(
            name: "SSHTransport",
            dependencies: [
                "CEpoll",
                "CLibSSH2",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "SSHConfig"),
        .target(
            name: "PuppetDB",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        .target(
            name: "Fleet",
            dependencies: [
                "SSHTransport", "SSHConfig", "PuppetDB",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "FleetTasks",
            dependencies: [
                "Fleet", "SSHTransport", "Replay", "ReplayReport",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "GovukFabCLI",
            dependencies: [
                "Fleet", "FleetTasks", "SSHTransport", "SSHConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "govuk-fab", dependencies: ["GovukFabCLI"]),

        // goreplay: replay engine, live capture, CLI.
        .target(
            name: "Replay",
            dependencies: [
                "CEpoll",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]),
        .target(name: "Capture", dependencies: ["CPcap", "Replay"]),
        .target(name: "ReplayReport", dependencies: ["Replay"]),
        .target(
            name: "ReplayMetrics",
            dependencies: [
                "Replay",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .target(name: "GoReplayCLI", dependencies: ["Replay", "Capture", "ReplayReport", "ReplayMetrics"]),
        .executableTarget(name: "goreplay", dependencies: ["GoReplayCLI"]),

        // Real sshd hosts on loopback for tests and the demo.
        .target(name: "TestFleet"),

        .testTarget(
            name: "SSHTransportTests",
            dependencies: ["SSHTransport", "TestFleet", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "FleetTests", dependencies: ["Fleet", "TestFleet"]),
        .testTarget(
            name: "FleetTasksTests",
            dependencies: ["FleetTasks", "Fleet", "TestFleet", "Replay", "ReplayReport", "SSHTransport"]),
        .testTarget(
            name: "ReplayTests",
            dependencies: [
                "Replay", "GoReplayCLI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        .testTarget(name: "CaptureTests", dependencies: ["Capture", "Replay"]),
        .testTarget(
            name: "ReplayReportTests",
            dependencies: [
                "ReplayReport", "ReplayMetrics", "Replay", "GoReplayCLI", "Capture",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .testTarget(name: "SSHConfigTests", dependencies: ["SSHConfig"]),
        .testTarget(name: "PuppetDBTests", dependencies: ["PuppetDB", "Fleet"]),
        .testTarget(name: "TestFleetTests", dependencies: ["TestFleet"]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestFleet", "Fleet"]),
        .testTarget(
            name: "GovukFabCLITests",
            dependencies: ["GovukFabCLI", "Fleet", "SSHConfig", "SSHTransport", "TestFleet"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer harnesses (docs/fuzzing.md), declared only when GOVUK_FAB_FUZZ is set so the normal
// build and `make test` never compile or link them. `make fuzz` sets it and builds them with
// -sanitize=fuzzer,address in its own scratch path, .build-fuzz.
if Context.environment["GOVUK_FAB_FUZZ"] != nil {
    let harnesses: [(name: String, directory: String, dependencies: [Target.Dependency])] = [
        ("FuzzFabricCommandLine", "FabricCommandLine", ["Fleet"]),
        ("FuzzInventory", "Inventory", ["Fleet", .product(name: "Yams", package: "Yams")]),
        ("FuzzPlaybook", "Playbook", ["FleetTasks", "Fleet"]),
        (
            "FuzzKnownHosts", "KnownHosts",
            ["SSHTransport", "CLibSSH2", .product(name: "Logging", package: "swift-log")]
        ),
        ("FuzzSSHConfig", "SSHConfig", ["SSHConfig"]),
        ("FuzzGorReader", "GorReader", ["Replay"]),
        ("FuzzHTTPFramer", "HTTPFramer", ["Capture", "Replay"]),
        ("FuzzTCPReassembler", "TCPReassembler", ["Capture"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", path: "Sources/Fuzzing/Support"))
    for harness in harnesses {
        package.targets.append(
            .executableTarget(
                name: harness.name, dependencies: ["FuzzSupport"] + harness.dependencies,
                path: "Sources/Fuzzing/\(harness.directory)"))
        package.products.append(.executable(name: harness.name, targets: [harness.name]))
    }
}
