package updraft.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Updraft's small JSON binding: a parser to plain values (Map, List, String, Number, Boolean,
 * null), a writer, and conversion between plain values and Java types by reflection.
 *
 * <p>Objects bind to POJOs by property name, ignoring case, '-' and '_' (so "Records",
 * "detail-type" and "eventSourceARN" find the fields "records", "detailType" and
 * "eventSourceArn" of the usual event classes). A property is set through its setter when there
 * is one, else through the field. Output uses public getters, then public fields.
 */
public final class Json {
    private Json() {}

    /** Thrown for text that is not JSON or a value that does not fit the wanted type. */
    public static final class JsonException extends RuntimeException {
        JsonException(String message) {
            super(message);
        }
    }

    // ---------------------------------------------------------------- parsing

    public static Object parse(String text) {
        Parser p = new Parser(text);
        p.ws();
        if (p.i == text.length()) {
            return new LinkedHashMap<String, Object>();
        }
        Object v = p.value();
        p.ws();
        if (p.i != text.length()) {
            throw new JsonException("unexpected text after JSON value at offset " + p.i);
        }
        return v;
    }

    private static final class Parser {
        final String s;
        int i;

        Parser(String s) {
            this.s = s;
        }

        void ws() {
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                    i++;
                } else {
                    break;
                }
            }
        }

        JsonException err(String what) {
            return new JsonException(what + " at offset " + i);
        }

        Object value() {
            ws();
            if (i >= s.length()) {
                throw err("unexpected end of JSON");
            }
            char c = s.charAt(i);
            switch (c) {
                case '{':
                    return object();
                case '[':
                    return array();
                case '"':
                    return string();
                case 't':
                    return word("true", Boolean.TRUE);
                case 'f':
                    return word("false", Boolean.FALSE);
                case 'n':
                    return word("null", null);
                default:
                    return number();
            }
        }

        Object word(String w, Object v) {
            if (!s.startsWith(w, i)) {
                throw err("unexpected character");
            }
            i += w.length();
            return v;
        }

        Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            ws();
            if (i < s.length() && s.charAt(i) == '}') {
                i++;
                return m;
            }
            while (true) {
                ws();
                if (i >= s.length() || s.charAt(i) != '"') {
                    throw err("expected a string key");
                }
                String k = string();
                ws();
                if (i >= s.length() || s.charAt(i) != ':') {
                    throw err("expected ':'");
                }
                i++;
                m.put(k, value());
                ws();
                if (i >= s.length()) {
                    throw err("unexpected end of JSON");
                }
                char c = s.charAt(i++);
                if (c == '}') {
                    return m;
                }
                if (c != ',') {
                    throw err("expected ',' or '}'");
                }
            }
        }

        List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            ws();
            if (i < s.length() && s.charAt(i) == ']') {
                i++;
                return l;
            }
            while (true) {
                l.add(value());
                ws();
                if (i >= s.length()) {
                    throw err("unexpected end of JSON");
                }
                char c = s.charAt(i++);
                if (c == ']') {
                    return l;
                }
                if (c != ',') {
                    throw err("expected ',' or ']'");
                }
            }
        }

        String string() {
            i++;
            StringBuilder b = null;
            int start = i;
            while (true) {
                if (i >= s.length()) {
                    throw err("unterminated string");
                }
                char c = s.charAt(i);
                if (c == '"') {
                    String out = b == null ? s.substring(start, i) : b.append(s, start, i).toString();
                    i++;
                    return out;
                }
                if (c == '\\') {
                    if (b == null) {
                        b = new StringBuilder();
                    }
                    b.append(s, start, i);
                    i++;
                    if (i >= s.length()) {
                        throw err("unterminated escape");
                    }
                    char e = s.charAt(i++);
                    switch (e) {
                        case '"': b.append('"'); break;
                        case '\\': b.append('\\'); break;
                        case '/': b.append('/'); break;
                        case 'b': b.append('\b'); break;
                        case 'f': b.append('\f'); break;
                        case 'n': b.append('\n'); break;
                        case 'r': b.append('\r'); break;
                        case 't': b.append('\t'); break;
                        case 'u':
                            if (i + 4 > s.length()) {
                                throw err("bad unicode escape");
                            }
                            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                            i += 4;
                            break;
                        default:
                            throw err("bad escape");
                    }
                    start = i;
                } else {
                    i++;
                }
            }
        }

        Object number() {
            int start = i;
            boolean fraction = false;
            while (i < s.length()) {
                char c = s.charAt(i);
                if ((c >= '0' && c <= '9') || c == '-' || c == '+') {
                    i++;
                } else if (c == '.' || c == 'e' || c == 'E') {
                    fraction = true;
                    i++;
                } else {
                    break;
                }
            }
            String t = s.substring(start, i);
            if (t.isEmpty()) {
                throw err("unexpected character");
            }
            try {
                if (fraction) {
                    return Double.valueOf(t);
                }
                long l = Long.parseLong(t);
                if (l >= Integer.MIN_VALUE && l <= Integer.MAX_VALUE) {
                    return (int) l;
                }
                return l;
            } catch (NumberFormatException e) {
                try {
                    return new BigDecimal(t);
                } catch (NumberFormatException e2) {
                    throw err("bad number");
                }
            }
        }
    }

    // ---------------------------------------------------------------- writing

    public static String write(Object v) {
        StringBuilder b = new StringBuilder();
        write(b, v, 0);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v, int depth) {
        if (depth > 256) {
            throw new JsonException("value nested too deeply (a cycle?)");
        }
        if (v == null) {
            b.append("null");
        } else if (v instanceof CharSequence || v instanceof Character || v instanceof Enum) {
            quote(b, v instanceof Enum ? ((Enum<?>) v).name() : v.toString());
        } else if (v instanceof Boolean) {
            b.append(v.toString());
        } else if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                quote(b, v.toString());
            } else if (d == Math.rint(d) && Math.abs(d) < 1e15) {
                b.append(v.toString());
            } else {
                b.append(v.toString());
            }
        } else if (v instanceof Number) {
            b.append(v.toString());
        } else if (v instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                quote(b, String.valueOf(e.getKey()));
                b.append(':');
                write(b, e.getValue(), depth + 1);
            }
            b.append('}');
        } else if (v instanceof Iterable) {
            b.append('[');
            boolean first = true;
            for (Object o : (Iterable<?>) v) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                write(b, o, depth + 1);
            }
            b.append(']');
        } else if (v.getClass().isArray()) {
            if (v instanceof byte[]) {
                quote(b, java.util.Base64.getEncoder().encodeToString((byte[]) v));
                return;
            }
            b.append('[');
            int n = Array.getLength(v);
            for (int k = 0; k < n; k++) {
                if (k > 0) {
                    b.append(',');
                }
                write(b, Array.get(v, k), depth + 1);
            }
            b.append(']');
        } else {
            write(b, pojoToMap(v), depth + 1);
        }
    }

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                case '\b': b.append("\\b"); break;
                case '\f': b.append("\\f"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        b.append('"');
    }

    /** The properties of a POJO: public getters first, then public fields. */
    private static Map<String, Object> pojoToMap(Object o) {
        Map<String, Object> m = new LinkedHashMap<>();
        Class<?> c = o.getClass();
        for (Method g : c.getMethods()) {
            if (Modifier.isStatic(g.getModifiers()) || g.getParameterCount() != 0
                    || g.getDeclaringClass() == Object.class) {
                continue;
            }
            String n = g.getName();
            String prop;
            if (n.startsWith("get") && n.length() > 3) {
                prop = n.substring(3);
            } else if (n.startsWith("is") && n.length() > 2
                    && (g.getReturnType() == boolean.class || g.getReturnType() == Boolean.class)) {
                prop = n.substring(2);
            } else {
                continue;
            }
            prop = Character.toLowerCase(prop.charAt(0)) + prop.substring(1);
            try {
                g.setAccessible(true);
                m.put(prop, g.invoke(o));
            } catch (ReflectiveOperationException | RuntimeException e) {
                // A getter that cannot be called is not a property.
            }
        }
        for (Field f : c.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) || m.containsKey(f.getName())) {
                continue;
            }
            try {
                m.put(f.getName(), f.get(o));
            } catch (IllegalAccessException e) {
                // Not readable: not a property.
            }
        }
        return m;
    }

    // ---------------------------------------------------------------- binding

    /** Converts a plain value (as {@link #parse} returns) to {@code type}. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public static Object convert(Object v, Type type) {
        Class<?> raw = rawClass(type);
        if (v == null) {
            if (raw.isPrimitive()) {
                return primitiveZero(raw);
            }
            return null;
        }
        if (raw == Object.class) {
            return v;
        }
        if (raw == String.class || raw == CharSequence.class) {
            return v instanceof String ? v : write(v);
        }
        if (raw == boolean.class || raw == Boolean.class) {
            if (v instanceof Boolean) {
                return v;
            }
            if (v instanceof String) {
                return Boolean.valueOf((String) v);
            }
            throw mismatch(v, type);
        }
        if (raw == char.class || raw == Character.class) {
            String s = v.toString();
            if (s.length() != 1) {
                throw mismatch(v, type);
            }
            return s.charAt(0);
        }
        if (raw.isPrimitive() || Number.class.isAssignableFrom(raw)) {
            return number(v, raw, type);
        }
        if (raw.isEnum()) {
            for (Object c : raw.getEnumConstants()) {
                if (((Enum<?>) c).name().equalsIgnoreCase(v.toString())) {
                    return c;
                }
            }
            throw mismatch(v, type);
        }
        if (raw == byte[].class && v instanceof String) {
            return java.util.Base64.getDecoder().decode((String) v);
        }
        if (raw.isArray()) {
            if (!(v instanceof List)) {
                throw mismatch(v, type);
            }
            Type elem = type instanceof GenericArrayType
                    ? ((GenericArrayType) type).getGenericComponentType()
                    : raw.getComponentType();
            List<?> l = (List<?>) v;
            Object a = Array.newInstance(rawClass(elem), l.size());
            for (int k = 0; k < l.size(); k++) {
                Array.set(a, k, convert(l.get(k), elem));
            }
            return a;
        }
        if (Map.class.isAssignableFrom(raw)) {
            if (!(v instanceof Map)) {
                throw mismatch(v, type);
            }
            Type vt = typeArg(type, 1);
            Map out = raw.isInterface() || Modifier.isAbstract(raw.getModifiers())
                    ? new LinkedHashMap() : (Map) instantiate(raw);
            for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) {
                out.put(e.getKey(), convert(e.getValue(), vt));
            }
            return out;
        }
        if (Collection.class.isAssignableFrom(raw)) {
            if (!(v instanceof List)) {
                throw mismatch(v, type);
            }
            Type et = typeArg(type, 0);
            Collection out;
            if (!raw.isInterface() && !Modifier.isAbstract(raw.getModifiers())) {
                out = (Collection) instantiate(raw);
            } else if (Set.class.isAssignableFrom(raw)) {
                out = new LinkedHashSet();
            } else {
                out = new ArrayList();
            }
            for (Object o : (List<?>) v) {
                out.add(convert(o, et));
            }
            return out;
        }
        if (v instanceof Map) {
            return toPojo((Map<String, Object>) v, raw);
        }
        return fromScalar(v, raw, type);
    }

    /**
     * A scalar for a class (dates, URIs, joda-time's DateTime, ...): a public constructor taking a
     * String or an Object, else a static parse(CharSequence | String) or valueOf(String).
     */
    private static Object fromScalar(Object v, Class<?> raw, Type type) {
        String text = v.toString();
        for (Class<?> arg : new Class<?>[] {String.class, Object.class}) {
            try {
                return raw.getConstructor(arg).newInstance(text);
            } catch (ReflectiveOperationException | RuntimeException e) {
                // Try the next way.
            }
        }
        for (String name : new String[] {"parse", "valueOf"}) {
            for (Class<?> arg : new Class<?>[] {CharSequence.class, String.class}) {
                try {
                    Method m = raw.getMethod(name, arg);
                    if (Modifier.isStatic(m.getModifiers()) && raw.isAssignableFrom(m.getReturnType())) {
                        return m.invoke(null, text);
                    }
                } catch (ReflectiveOperationException | RuntimeException e) {
                    // Try the next way.
                }
            }
        }
        throw mismatch(v, type);
    }

    private static JsonException mismatch(Object v, Type type) {
        String what = v instanceof Map ? "an object" : v instanceof List ? "an array"
                : v instanceof String ? "a string" : v instanceof Boolean ? "a boolean" : "a number";
        return new JsonException("cannot convert " + what + " to " + type.getTypeName());
    }

    private static Object primitiveZero(Class<?> c) {
        if (c == boolean.class) {
            return false;
        }
        if (c == char.class) {
            return '\0';
        }
        return number(0, c, c);
    }

    private static Object number(Object v, Class<?> raw, Type type) {
        Number n;
        if (v instanceof Number) {
            n = (Number) v;
        } else if (v instanceof String) {
            try {
                n = new BigDecimal(((String) v).trim());
            } catch (NumberFormatException e) {
                throw mismatch(v, type);
            }
        } else {
            throw mismatch(v, type);
        }
        if (raw == int.class || raw == Integer.class) {
            return n.intValue();
        }
        if (raw == long.class || raw == Long.class) {
            return n.longValue();
        }
        if (raw == double.class || raw == Double.class || raw == Number.class) {
            return n.doubleValue();
        }
        if (raw == float.class || raw == Float.class) {
            return n.floatValue();
        }
        if (raw == short.class || raw == Short.class) {
            return n.shortValue();
        }
        if (raw == byte.class || raw == Byte.class) {
            return n.byteValue();
        }
        if (raw == BigDecimal.class) {
            return n instanceof BigDecimal ? n : new BigDecimal(n.toString());
        }
        if (raw == BigInteger.class) {
            return new BigDecimal(n.toString()).toBigInteger();
        }
        throw mismatch(v, type);
    }

    static Class<?> rawClass(Type t) {
        if (t instanceof Class) {
            return (Class<?>) t;
        }
        if (t instanceof ParameterizedType) {
            return rawClass(((ParameterizedType) t).getRawType());
        }
        if (t instanceof GenericArrayType) {
            return Array.newInstance(rawClass(((GenericArrayType) t).getGenericComponentType()), 0)
                    .getClass();
        }
        if (t instanceof WildcardType) {
            Type[] up = ((WildcardType) t).getUpperBounds();
            return up.length > 0 ? rawClass(up[0]) : Object.class;
        }
        return Object.class;
    }

    private static Type typeArg(Type t, int k) {
        if (t instanceof ParameterizedType) {
            Type[] a = ((ParameterizedType) t).getActualTypeArguments();
            if (k < a.length) {
                return a[k];
            }
        }
        return Object.class;
    }

    private static Object instantiate(Class<?> c) {
        try {
            Constructor<?> k = c.getDeclaredConstructor();
            k.setAccessible(true);
            return k.newInstance();
        } catch (ReflectiveOperationException e) {
            throw new JsonException("cannot create " + c.getName() + ": it needs a constructor without arguments");
        }
    }

    /** A property name as matched: lower case, without '-' and '_'. */
    private static String key(String name) {
        StringBuilder b = new StringBuilder(name.length());
        for (int k = 0; k < name.length(); k++) {
            char c = name.charAt(k);
            if (c != '-' && c != '_') {
                b.append(Character.toLowerCase(c));
            }
        }
        return b.toString();
    }

    /** How to set one property of a class. */
    private static final class Setter {
        final Method method;
        final Field field;

        Setter(Method method, Field field) {
            this.method = method;
            this.field = field;
        }

        Type type() {
            return method != null ? method.getGenericParameterTypes()[0] : field.getGenericType();
        }

        void set(Object target, Object value) throws ReflectiveOperationException {
            if (method != null) {
                method.invoke(target, value);
            } else {
                field.set(target, value);
            }
        }
    }

    private static final Map<Class<?>, Map<String, Setter>> SETTERS = new ConcurrentHashMap<>();

    private static Map<String, Setter> setters(Class<?> c) {
        Map<String, Setter> found = SETTERS.get(c);
        if (found == null) {
            found = findSetters(c);
            SETTERS.put(c, found);
        }
        return found;
    }

    private static Map<String, Setter> findSetters(Class<?> c) {
        Map<String, Setter> out = new HashMap<>();
        Set<String> seen = new HashSet<>();
        for (Class<?> k = c; k != null && k != Object.class; k = k.getSuperclass()) {
            for (Field f : k.getDeclaredFields()) {
                int mod = f.getModifiers();
                if (Modifier.isStatic(mod) || Modifier.isFinal(mod) || !seen.add(f.getName())) {
                    continue;
                }
                try {
                    f.setAccessible(true);
                } catch (RuntimeException e) {
                    continue;
                }
                out.putIfAbsent(key(f.getName()), new Setter(null, f));
            }
        }
        // Setters win over fields: they may convert or validate.
        for (Method m : c.getMethods()) {
            if (m.getName().startsWith("set") && m.getName().length() > 3 && m.getParameterCount() == 1
                    && !Modifier.isStatic(m.getModifiers())) {
                out.put(key(m.getName().substring(3)), new Setter(m, null));
            }
        }
        return out;
    }

    private static Object toPojo(Map<String, Object> v, Class<?> c) {
        if (c.isInterface() || Modifier.isAbstract(c.getModifiers())) {
            throw new JsonException("cannot create " + c.getName() + ": it is abstract");
        }
        Object o = instantiate(c);
        Map<String, Setter> props = setters(c);
        for (Map.Entry<String, Object> e : v.entrySet()) {
            Setter s = props.get(key(e.getKey()));
            if (s == null) {
                continue;
            }
            Object value;
            try {
                value = convert(e.getValue(), s.type());
            } catch (JsonException ex) {
                // A property of a type this binding cannot build (a library's own value class) is
                // left unset rather than failing the whole event.
                continue;
            }
            try {
                s.set(o, value);
            } catch (ReflectiveOperationException ex) {
                Throwable t = ex.getCause() != null ? ex.getCause() : ex;
                throw new JsonException("cannot set " + e.getKey() + " of " + c.getName() + ": " + t);
            }
        }
        return o;
    }
}
