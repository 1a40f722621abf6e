// Signs with keys on a PKCS#11 token through Java's SunPKCS11 provider and verifies each
// signature with the public key of the key's certificate through Java's own providers.
//
// java Sign CONFIG ALIAS ALGORITHM [ALIAS ALGORITHM]...   (the PIN in the environment, TOKEN_PIN)
//
// Prints "verified ALIAS ALGORITHM LENGTH" per key; exits 1 on a signature that does not
// verify, or one that still verifies over a changed message.

import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.Security;
import java.security.Signature;

public class Sign {
    public static void main(String[] args) throws Exception {
        if (args.length < 3 || args.length % 2 == 0) {
            System.err.println("usage: java Sign CONFIG ALIAS ALGORITHM [ALIAS ALGORITHM]...");
            System.exit(2);
        }
        String pin = System.getenv("TOKEN_PIN");
        if (pin == null) {
            System.err.println("TOKEN_PIN is not set");
            System.exit(2);
        }
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        KeyStore store = KeyStore.getInstance("PKCS11", provider);
        store.load(null, pin.toCharArray());
        for (int i = 1; i < args.length; i += 2) {
            String alias = args[i];
            String algorithm = args[i + 1];
            PrivateKey key = (PrivateKey) store.getKey(alias, null);
            if (key == null) {
                System.err.println("no private key " + alias + " on the token");
                System.exit(1);
            }
            PublicKey publicKey = store.getCertificate(alias).getPublicKey();
            byte[] message = ("signed through SunPKCS11 with " + alias).getBytes(StandardCharsets.UTF_8);

            Signature signer = Signature.getInstance(algorithm, provider);
            signer.initSign(key);
            signer.update(message);
            byte[] signature = signer.sign();

            if (!verifies(algorithm, publicKey, message, signature)) {
                System.err.println(alias + ": the signature does not verify");
                System.exit(1);
            }
            message[0] ^= 1;
            if (verifies(algorithm, publicKey, message, signature)) {
                System.err.println(alias + ": the signature verifies over a changed message");
                System.exit(1);
            }
            System.out.println("verified " + alias + " " + algorithm + " " + signature.length);
        }
    }

    /// Verification through the JDK's own providers, not the token.
    static boolean verifies(String algorithm, PublicKey key, byte[] message, byte[] signature)
            throws Exception {
        Signature verifier = Signature.getInstance(algorithm);
        verifier.initVerify(key);
        verifier.update(message);
        return verifier.verify(signature);
    }
}
