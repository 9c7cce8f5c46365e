using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Accel.Whpx.Interop;

namespace Hypervisor.Accel.Whpx.Tests.HeaderCheck;

/// <summary>One compile-time assertion about the native headers, derived from our own interop definitions.</summary>
internal abstract record HeaderCheckItem
{
    /// <summary>A name that appears in the compiler's message when the assertion fails.</summary>
    public abstract string Label { get; }

    public abstract string ToC(int index);

    protected static string Hex(ulong value) => "0x" + value.ToString("X", CultureInfo.InvariantCulture) + "ULL";
}

internal sealed record SizeCheck(string CType, int Size) : HeaderCheckItem
{
    public override string Label => $"sizeof({CType})";

    public override string ToC(int index) =>
        $"_Static_assert(sizeof({CType}) == {Size}, \"{Label} == {Size}\");";
}

internal sealed record OffsetCheck(string CType, string Member, int Offset, int Size) : HeaderCheckItem
{
    public override string Label => $"{CType}.{Member}";

    public override string ToC(int index) =>
        $"_Static_assert(offsetof({CType}, {Member}) == {Offset}, \"offsetof {Label} == {Offset}\");\n" +
        $"_Static_assert(sizeof((({CType}*)0)->{Member}) == {Size}, \"sizeof {Label} == {Size}\");";
}

internal sealed record EnumValueCheck(string Member, ulong Value) : HeaderCheckItem
{
    public override string Label => Member;

    public override string ToC(int index) =>
        $"_Static_assert((unsigned long long)({Member}) == {Hex(Value)}, \"{Label} == {Hex(Value)}\");";
}

/// <summary>
/// Sets <see cref="Member"/> to all ones in a zeroed <see cref="CType"/> and compares the storage bytes with
/// <see cref="Mask"/>. Bit-fields are not constant expressions, so the comparison is folded by the optimiser and a
/// mismatch leaves a call to a function declared with <c>__attribute__((error))</c>, which fails the compile.
/// </summary>
internal sealed record BitFieldCheck(string CType, string Member, int StorageOffset, int StorageSize, ulong Mask) : HeaderCheckItem
{
    public override string Label => $"{CType}.{Member}";

    public override string ToC(int index) =>
        $"extern void bitfield_mismatch_{index}(void) __attribute__((error(\"bit-field {Label}: expected mask {Hex(Mask)} in {StorageSize} bytes at offset {StorageOffset}\")));\n" +
        $"static inline void check_bitfield_{index}(void) {{ {CType} v; __builtin_memset(&v, 0, sizeof v); v.{Member} = ~v.{Member}; " +
        $"unsigned long long got = 0; __builtin_memcpy(&got, (const unsigned char*)&v + {StorageOffset}, {StorageSize}); " +
        $"if (got != {Hex(Mask)}) bitfield_mismatch_{index}(); }}";
}

/// <summary>Our import's signature, as a C function pointer type, must accept the header's prototype.</summary>
internal sealed record FunctionCheck(string Name, string ReturnType, IReadOnlyList<string> Parameters) : HeaderCheckItem
{
    public override string Label => Name;

    public override string ToC(int index) =>
        $"{ReturnType} (WINAPI *const import_{Name})({string.Join(", ", Parameters)}) = {Name};";
}

/// <summary>Our <c>[UnmanagedCallersOnly]</c> callback's signature must be the header's callback typedef.</summary>
internal sealed record CallbackCheck(string Typedef, string Method, string ReturnType, IReadOnlyList<string> Parameters) : HeaderCheckItem
{
    public override string Label => Typedef;

    public override string ToC(int index) =>
        $"{Typedef} const callback_{index}_{Method} = ({ReturnType} (CALLBACK *)({string.Join(", ", Parameters)}))0;";
}

/// <summary>Builds the checks from the interop types by reflection and renders them as one C translation unit.</summary>
internal static class HeaderChecks
{
    private const string InteropNamespace = "Hypervisor.Accel.Whpx.Interop";

    public static Assembly Target => typeof(WHV_RUN_VP_EXIT_CONTEXT).Assembly;

    public static IReadOnlyList<HeaderCheckItem> Build()
    {
        var items = new List<HeaderCheckItem>();
        var types = Target.GetTypes().Where(t => t.Namespace == InteropNamespace).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();

        foreach (var type in types.Where(t => t.IsValueType && !t.IsEnum && t.Name.StartsWith("WHV_", StringComparison.Ordinal)))
        {
            items.Add(new SizeCheck(type.Name, SizeOf(type)));
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                if (field.IsDefined(typeof(BitFieldStorageAttribute)))
                {
                    continue;
                }

                items.Add(new OffsetCheck(type.Name, field.Name, (int)Marshal.OffsetOf(type, field.Name), SizeOf(field.FieldType)));
            }
        }

        foreach (var type in types.Where(t => t.IsEnum && t.Name.StartsWith("WHV_", StringComparison.Ordinal)))
        {
            items.Add(new SizeCheck(type.Name, SizeOf(Enum.GetUnderlyingType(type))));
            foreach (var field in type.GetFields(BindingFlags.Static | BindingFlags.Public))
            {
                items.Add(new EnumValueCheck(field.Name, Convert.ToUInt64(field.GetRawConstantValue(), CultureInfo.InvariantCulture)));
            }
        }

        foreach (var field in typeof(WhvBitFields).GetFields(BindingFlags.Static | BindingFlags.Public))
        {
            var native = field.GetCustomAttribute<NativeBitFieldAttribute>()
                ?? throw new InvalidOperationException($"{field.Name} has no [NativeBitField]");
            var bits = (BitField)field.GetValue(null)!;
            items.Add(new BitFieldCheck(native.CType, native.Member, native.StorageOffset, native.StorageSizeInBytes, bits.Mask));
        }

        foreach (var method in types.SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)))
        {
            if (method.IsDefined(typeof(LibraryImportAttribute)))
            {
                items.Add(new FunctionCheck(method.Name, ReturnCType(method), ParameterCTypes(method)));
            }
        }

        foreach (var method in Target.GetTypes().SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)))
        {
            var callback = method.GetCustomAttribute<NativeCallbackAttribute>();
            if (callback is not null)
            {
                items.Add(new CallbackCheck(callback.TypedefName, method.Name, ReturnCType(method), ParameterCTypes(method)));
            }
        }

        return items;
    }

    public static string Render(IEnumerable<HeaderCheckItem> items)
    {
        var lines = new List<string>
        {
            "/* Generated by Hypervisor.Accel.Whpx.Tests (HeaderChecks) from the whpx interop definitions; compile-only. */",
            "#include <windows.h>",
            "#include <winhvplatform.h>",
            "#include <winhvemulation.h>",
            "#include <stddef.h>",
            string.Empty,
        };
        var index = 0;
        var bitFieldIndexes = new List<int>();
        foreach (var item in items)
        {
            lines.Add(item.ToC(index));
            if (item is BitFieldCheck)
            {
                bitFieldIndexes.Add(index);
            }

            index++;
        }

        lines.Add("void run_bitfield_checks(void);");
        lines.Add("void run_bitfield_checks(void) {");
        lines.AddRange(bitFieldIndexes.Select(i => $"    check_bitfield_{i}();"));
        lines.Add("}");
        return string.Join('\n', lines) + "\n";
    }

    private static string ReturnCType(MethodInfo method) =>
        method.ReturnParameter.GetCustomAttribute<NativeTypeAttribute>()?.CType ?? MapType(method.ReturnType, isReturn: true);

    private static List<string> ParameterCTypes(MethodInfo method) =>
        [.. method.GetParameters().Select(p => p.GetCustomAttribute<NativeTypeAttribute>()?.CType ?? MapType(p.ParameterType, isReturn: false))];

    private static string MapType(Type type, bool isReturn)
    {
        if (type.IsByRef || type.IsPointer)
        {
            var element = type.GetElementType()!;
            return element == typeof(void) ? "VOID*" : MapType(element, isReturn: false) + "*";
        }

        if (type.IsEnum)
        {
            return type.Name;
        }

        if (type == typeof(WhvPartitionHandle))
        {
            return "WHV_PARTITION_HANDLE";
        }

        if (type == typeof(WhvEmulatorHandle))
        {
            return "WHV_EMULATOR_HANDLE";
        }

        if (type.IsValueType && type.Namespace == InteropNamespace)
        {
            return type.Name;
        }

        return Type.GetTypeCode(type) switch
        {
            TypeCode.Int32 => isReturn ? "HRESULT" : "INT32",
            TypeCode.UInt32 => "UINT32",
            TypeCode.UInt64 => "UINT64",
            TypeCode.UInt16 => "UINT16",
            TypeCode.Byte => "UINT8",
            _ when type == typeof(nint) => "VOID*",
            _ => throw new NotSupportedException($"no C mapping for {type}"),
        };
    }

    private static int SizeOf(Type type)
    {
        if (type.IsPointer || type.IsFunctionPointer || type == typeof(nint) || type == typeof(nuint))
        {
            return IntPtr.Size;
        }

        return (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!;
    }
}
