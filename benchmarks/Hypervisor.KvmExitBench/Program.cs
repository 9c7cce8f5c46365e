// Port-I/O exit round trips through our kvm backend, to compare with the kvm-guest tool's C reference in the same
// boot (issue 5): run -- sh -c '$KVM_GUEST_TOOLS/kvmtest --bench N && dotnet Hypervisor.KvmExitBench.dll N'
// Each iteration is a real-mode OUT DX,AL that exits to user space, is answered by our port bus, and re-enters.
using System.Globalization;
using Hypervisor.Accel.Kvm;
using Hypervisor.Core.Accelerators;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

int exits = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20_000;
if (exits is < 1 or > 100_000_000)
{
    Console.Error.WriteLine("usage: Hypervisor.KvmExitBench [EXITS (1..100000000)]");
    return 64;
}

var kvm = new KvmAccelerator();
AcceleratorProbeResult probe = kvm.Probe();
if (!probe.IsAvailable)
{
    Console.Error.WriteLine($"kvm unavailable: {probe.Reason}");
    return 68;
}

// Warm up first (the runtime compiles the exit path in tiers), then measure in a fresh VM.
RunOnce(kvm, Math.Min(exits, 5_000));
double? ms = RunOnce(kvm, exits);
if (ms is null)
{
    return 6;
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"hypervisor-kvm: {exits} exits, {ms:0} ms, {ms * 1000 / exits:0.00} us/exit (includes vCPU thread start and the final HLT)"));
return 0;

static double? RunOnce(KvmAccelerator kvm, int exits)
{
    // Firmware: F000:0000 loops EXITS times over OUT 0x80 (no device claims it: the cheapest bus path), then HLT with
    // interrupts off, which ends the run. The reset vector at F000:FFF0 jumps there.
    var a = new Assembler(16);
    Label loop = a.CreateLabel();
    a.cli();
    a.mov(dx, 0x80);
    a.mov(ecx, exits);
    a.Label(ref loop);
    a.@out(dx, al);
    a.dec(ecx);
    a.jnz(loop);
    a.hlt();
    using var code = new MemoryStream();
    a.Assemble(new StreamCodeWriter(code), 0);
    var image = new byte[64 * 1024];
    code.ToArray().CopyTo(image, 0);
    new byte[] { 0xEA, 0x00, 0x00, 0x00, 0xF0 }.CopyTo(image, 0xFFF0);

    using var builder = new VirtualMachineBuilder();
    GuestMemoryLayout.AddRam(builder.Memory, 16 << 20);
    GuestMemoryLayout.AddFirmware(builder.Memory, image);
    var selector = new AcceleratorSelector([kvm]);
    using VirtualMachine vm = builder.Build(selector, selector.Parse("kvm"));
    MachineRunResult result = vm.Run(new MachineRunOptions(TimeSpan.FromMinutes(10)));
    if (result.Reason != MachineStopReason.Halted || vm.Ports.UnclaimedWriteCount != exits)
    {
        Console.Error.WriteLine($"unexpected run: {result.Reason} {result.Detail}, {vm.Ports.UnclaimedWriteCount} port writes seen");
        return null;
    }

    return result.Elapsed.TotalMilliseconds;
}
